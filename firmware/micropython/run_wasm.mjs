// Runs the twinrig board firmware on the official MicroPython WebAssembly port
// (npm @micropython/micropython-webassembly-pyscript) and its test driver inside it.
//
//   node firmware/micropython/run_wasm.mjs --vectors firmware/protocol/vectors \
//        [--suites frames,rules,commands,main_loop,calibration_file,fuzz] \
//        [--fuzz-n 100000] [--fuzz-seed 1] [--heap-mb 32 | --heap-kb 32768]
//   node firmware/micropython/run_wasm.mjs --driver driver2 --vectors firmware/protocol/vectors/v2
//        [--suites frames,rules,timing,commands,streams,update,noalloc,main_loop]
//   node firmware/micropython/run_wasm.mjs --serve
//
// --serve: one emulated board for the host's bus emulator instead of the test driver:
// reads command lines on stdin and answers each with one line (wasm/serve.py says which).
//
// Copies the firmware's top-level *.py files and wasm/*.py (the driver and a
// stand-in `machine`) into /fw of the
// port's in-memory filesystem, the vector JSON files into /vectors, runs
// `driver.main(args)` (`--driver driver2`: protocol 2's, wasm/driver2.py) and passes the
// driver's JSON lines to stdout. Exit status 0
// when the driver finished, 1 on a Python exception (traceback on stderr), 2 when
// the npm package is missing (install: npm ci --prefix firmware/micropython).

import fs from "node:fs";
import readline from "node:readline";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PKG = path.join(HERE, "node_modules", "@micropython", "micropython-webassembly-pyscript",
                      "micropython.mjs");

function parseArgs(argv) {
  const a = { vectors: path.join(HERE, "..", "protocol", "vectors"), suites: null,
              fuzzN: 100000, fuzzSeed: 1, heapKb: 32 * 1024, serve: false, driver: "driver" };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    if (k === "--vectors") { a.vectors = v; i++; }
    else if (k === "--suites") { a.suites = v.split(",").filter(Boolean); i++; }
    else if (k === "--fuzz-n") { a.fuzzN = parseInt(v, 10); i++; }
    else if (k === "--fuzz-seed") { a.fuzzSeed = parseInt(v, 10); i++; }
    else if (k === "--heap-mb") { a.heapKb = 1024 * parseInt(v, 10); i++; }
    else if (k === "--heap-kb") { a.heapKb = parseInt(v, 10); i++; }
    else if (k === "--serve") { a.serve = true; }
    else if (k === "--driver") { a.driver = v; i++; }
    else { process.stderr.write(`run_wasm: unknown argument ${k}\n`); process.exit(64); }
  }
  return a;
}

const args = parseArgs(process.argv.slice(2));
if (!fs.existsSync(PKG)) {
  process.stderr.write(`run_wasm: ${PKG} is missing; run: npm ci --prefix firmware/micropython\n`);
  process.exit(2);
}
const { loadMicroPython } = await import(pathToFileURL(PKG).href);

const mp = await loadMicroPython({
  heapsize: args.heapKb * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

const FS = mp.FS;
for (const d of ["/fw", "/vectors", "/tmp"]) {
  try { FS.mkdir(d); } catch (e) { /* exists */ }
}
for (const f of fs.readdirSync(HERE)) {
  if (f.endsWith(".py")) FS.writeFile("/fw/" + f, fs.readFileSync(path.join(HERE, f)));
}
for (const f of fs.readdirSync(path.join(HERE, "wasm"))) {
  if (f.endsWith(".py")) FS.writeFile("/fw/" + f, fs.readFileSync(path.join(HERE, "wasm", f)));
}
if (fs.existsSync(args.vectors)) {
  for (const f of fs.readdirSync(args.vectors)) {
    if (f.endsWith(".json")) FS.writeFile("/vectors/" + f, fs.readFileSync(path.join(args.vectors, f)));
  }
}

if (args.serve) {
  mp.runPython("import sys\nsys.path.insert(0, '/fw')\nimport serve");
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    mp.globals.set("_line", line);
    mp.runPython("_answer = serve.line(_line)");
    process.stdout.write(mp.globals.get("_answer") + "\n");
  }
  process.exit(0);
}

const driverArgs = { vectors: "/vectors", tmp: "/tmp", fuzz_n: args.fuzzN, fuzz_seed: args.fuzzSeed };
if (args.suites) driverArgs.suites = args.suites;
const code = [
  "import sys",
  "sys.path.insert(0, '/fw')",
  "import " + args.driver,
  args.driver + ".main(" + JSON.stringify(JSON.stringify(driverArgs)) + ")",
].join("\n");
try {
  mp.runPython(code);
} catch (e) {
  process.stderr.write("run_wasm: Python error:\n" + (e && e.message ? e.message : String(e)) + "\n");
  process.exitCode = 1;
}
