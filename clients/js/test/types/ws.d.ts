// the ws package ships no types; the test only passes its constructor along
declare module "ws";
