// A MicroPython board on a serial line, for mpremote: the official MicroPython WebAssembly
// port (npm @micropython/micropython-webassembly-pyscript, MicroPython 1.27) behind the
// board's REPL, read from stdin and answered on stdout byte for byte (the Python side puts
// a pseudo-terminal on both; see tests/micropython_device.py).
//
//   node tests/micropython_device.mjs PATH/TO/micropython.mjs
//
// What a board does and this one does the same (MicroPython docs, "The MicroPython
// Interactive Interpreter Mode", raw REPL; shared/runtime/pyexec.c, event-driven REPL):
// - the friendly and the raw REPL of pyexec, character by character;
// - Ctrl-D at an empty raw-REPL line or the friendly prompt is a soft reset: "MPY: soft
//   reboot", a fresh interpreter, the filesystem kept (a board's flash); then boot.py, and
//   main.py only when the friendly REPL is active (as the rp2 port's main.c does); the raw
//   REPL is re-entered if it was active;
// - machine.reset() is a hard reset: the same, the REPL back to friendly, main.py run;
// - OSError numbers are MicroPython's (Linux's: ENOENT 2, EEXIST 17, ...).
// Where the WebAssembly port differs from a board and this file adapts it:
// - the port numbers OSError as Emscripten does (ENOENT 44, EEXIST 20, ...): a shim loaded
//   at every boot maps them to MicroPython's numbers, which mpremote parses; the same shim
//   reads the empty path as the current folder, as a board's VFS does (Emscripten refuses it);
// - the port's event-driven REPL has no blocking stdin, so its raw-paste mode (Ctrl-E A
//   Ctrl-A) cannot read its data: the request is answered "R\x00" (raw paste not
//   supported), as firmware before MicroPython 1.14 answers, and mpremote falls back to the
//   plain raw REPL;
// - `machine` is not in the port: a module with reset() and unique_id() stands in (the
//   unique id from the command line's optional second argument, 8 bytes hex).
import process from "node:process";

const PKG = process.argv[2];
const UID = process.argv[3] || "e66038b7131d2a2c";
const { loadMicroPython } = await import(PKG);

const ROM = "/emulator";                // not the board's filesystem: rebuilt at every boot
const VOLATILE = new Set(["/dev", "/proc", "/tmp", "/home", ROM]);
const SHIM = `
import os, builtins, sys
_E = {44: 2, 20: 17, 54: 20, 31: 21, 55: 39, 28: 22, 10: 16, 69: 28}
_cwd = os.getcwd
def _wrap(f):
    def g(*a, **k):
        if a and a[0] == '':
            a = (_cwd(),) + a[1:]
        try:
            return f(*a, **k)
        except OSError as e:
            n = e.errno
            if n in _E:
                raise OSError(_E[n]) from None
            raise
    return g
for _n in ('stat', 'mkdir', 'remove', 'rmdir', 'listdir', 'ilistdir', 'rename', 'unlink', 'chdir', 'statvfs'):
    setattr(os, _n, _wrap(getattr(os, _n)))
builtins.open = _wrap(builtins.open)
del _n, _wrap
sys.path.append('${ROM}')
`;
const MACHINE = `
import js
def reset():
    js.twinrigHardReset()
    raise SystemExit
def soft_reset():
    raise SystemExit
def unique_id():
    import binascii
    return binascii.unhexlify('${UID}')
`;

let mp;
let flash = new Map();                  // path -> contents (null for a folder), across resets
let raw = false;                        // which REPL is active
let quiet = false;
let busy = false;
let hardReset = false;
const queue = [];

function walk(FS, dir, out) {
  for (const name of FS.readdir(dir)) {
    if (name === "." || name === "..") continue;
    const p = dir === "/" ? "/" + name : dir + "/" + name;
    if (VOLATILE.has(p)) continue;
    if (FS.isDir(FS.stat(p).mode)) { out.set(p, null); walk(FS, p, out); }
    else out.set(p, FS.readFile(p));
  }
}

globalThis.twinrigHardReset = () => { hardReset = true; };

function runFile(name) {
  try { mp.FS.stat("/" + name); } catch (e) { return; }
  try { mp.runPython(`exec(open('/${name}').read(), {'__name__': '__main__'})`); }
  catch (e) { process.stdout.write(String(e.message || e).replace(/\n/g, "\r\n") + "\r\n"); }
}

async function boot(runMain) {
  mp = await loadMicroPython({ heapsize: 256 * 1024, linebuffer: false,
    stdout: (b) => { if (!quiet) process.stdout.write(Buffer.from(b)); },
    stderr: (b) => { if (!quiet) process.stdout.write(Buffer.from(b)); } });
  for (const [p, data] of flash) {
    if (data === null) { try { mp.FS.mkdir(p); } catch (e) { /* exists */ } }
    else mp.FS.writeFile(p, data);
  }
  mp.FS.mkdir(ROM);
  mp.FS.writeFile(ROM + "/machine.py", MACHINE);
  mp.runPython(SHIM);
  runFile("boot.py");
  if (runMain) runFile("main.py");
  quiet = true;
  mp.replInit();                        // prints the banner: a board prints it at boot, not here
  quiet = false;
}

async function reboot(hard) {
  flash = new Map();
  walk(mp.FS, "/", flash);
  if (hard) raw = false;
  process.stdout.write("MPY: soft reboot\r\n");
  await boot(!raw);
  if (raw) mp.replProcessChar(1);
  else mp.replProcessChar(2);
}

async function pump() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    const c = queue.shift();
    if (raw && c === 5 && queue.length >= 2 && queue[0] === 0x41 && queue[1] === 1) {
      queue.splice(0, 2);
      process.stdout.write("R\x00");
      continue;
    }
    if (!raw && c === 1) raw = true;
    else if (raw && c === 2) raw = false;
    const ret = mp.replProcessChar(c);
    if (hardReset) { hardReset = false; await reboot(true); }
    else if (ret & 0x100) await reboot(false);   // PYEXEC_FORCED_EXIT: soft reset
  }
  busy = false;
}

await boot(false);
process.stdin.on("data", (chunk) => { for (const c of chunk) queue.push(c); pump(); });
process.stdin.on("error", () => process.exit(0));
process.stdin.on("end", () => process.exit(0));
