// index.d.ts is written by hand: compile an app's use of the API against it (tsc, no emit).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

test("index.d.ts types an app's use of the client (and refuses misuse)", () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const run = spawnSync(process.execPath, [tsc, "-p", path.join(here, "types", "tsconfig.json")], { encoding: "utf8" });
  assert.equal(run.status, 0, `tsc:\n${run.stdout}${run.stderr}`);
});
