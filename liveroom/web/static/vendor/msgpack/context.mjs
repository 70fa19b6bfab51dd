/* eslint-disable @typescript-eslint/ban-types */
export {};
