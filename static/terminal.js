// The terminal of the session and lab pages: xterm.js on one side of a WebSocket, the
// container's pty on the other. The wire format is docs/terminal-protocol.md:
// binary frames whose first byte is an opcode.
//
// xterm.js and its fit addon are loaded as classic scripts before this module
// and leave `Terminal` and `FitAddon` on `window`.

const OP_DATA = 0;
const OP_RESIZE = 1;
const OP_ACK = 2;
const OP_EXIT = 3;
const OP_HELLO = 5;

// Acknowledge output in batches, not one ack per output frame.
// The timer bounds how long the server waits for an ack of a quiet trickle.
const ACK_BYTES = 32 * 1024;
const ACK_DELAY_MS = 100;

const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5000;
// A connection that lived this long was a real one: the next failure starts
// the backoff again from the beginning instead of waiting 5 s.
const STABLE_MS = 5000;

// Close codes after which reconnecting cannot help (see the protocol).
const FINAL_CLOSES = new Map([
  [4401, 'not authorised for this session'],
  [4404, 'this session no longer exists'],
]);

// Replies the terminal sends by itself, such as the cursor position report
// (ESC [ row ; col R) or device attributes (ESC [ ? ... c).
const TERMINAL_REPLY = /^\x1b\[[0-9;?>]*[Rcn]$/;

const container = document.getElementById('terminal');
const statusLine = document.getElementById('status');
const sessionId = container.dataset.sessionId;
const encoder = new TextEncoder();

const term = new window.Terminal({
  cursorBlink: true,
  fontFamily: '"DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
  fontSize: 14,
  scrollback: 5000,
  theme: { background: '#11151c', foreground: '#d8dee9', cursor: '#f0c674' },
});
const fit = new window.FitAddon.FitAddon();
term.loadAddon(fit);
term.open(container);
fit.fit();
term.focus();
window.gantryTerminal = term;

let socket = null; // the current connection, or null between connections
let conn = null; // per-connection state, so late callbacks of an old one do nothing
let connections = 0;
let retryMs = RETRY_FIRST_MS;
let finished = false; // the shell exited or the session is gone: stay closed

function setStatus(state, text, withHomeLink = false) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
  if (withHomeLink) {
    const link = document.createElement('a');
    link.href = '/';
    link.textContent = 'back to the start page';
    statusLine.append(' · ', link);
  }
}

function frame(op, payload) {
  const bytes = new Uint8Array(1 + payload.length);
  bytes[0] = op;
  bytes.set(payload, 1);
  return bytes;
}

function send(op, payload) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(frame(op, payload));
}

function sendSize() {
  send(OP_RESIZE, encoder.encode(JSON.stringify({ cols: term.cols, rows: term.rows })));
}

// ---- output and acknowledgements ----

function flushAck(c) {
  clearTimeout(c.ackTimer);
  c.ackTimer = null;
  if (c.processed === 0 || c !== conn) return;
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setUint32(0, c.processed, false); // big-endian
  c.processed = 0;
  send(OP_ACK, payload);
}

function onOutput(c, bytes) {
  // Track where the scrollback replay ends: while xterm parses it, the
  // replies it makes to requests inside it (busybox's ESC[6n after each
  // prompt) would answer a shell that stopped waiting long ago, and land in
  // its input line as garbage. onData drops them until then.
  let endsReplay = false;
  if (c.replayLeft > 0) {
    c.replayLeft -= Math.min(c.replayLeft, bytes.length);
    endsReplay = c.replayLeft === 0;
  }

  // The callback runs once xterm's parser has consumed these bytes; only then
  // do they count as processed, so a busy tab slows down its own shell.
  term.write(bytes, () => {
    if (endsReplay) c.replaying = false;
    if (c !== conn) return;
    c.processed += bytes.length;
    if (c.processed >= c.ackBytes) flushAck(c);
    else if (!c.ackTimer) c.ackTimer = setTimeout(() => flushAck(c), ACK_DELAY_MS);
  });
}

function onHello(c, payload) {
  let hello = {};
  try {
    hello = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    // A hello we cannot read still marks a live connection.
  }
  c.replayLeft = Number(hello.replay_bytes) || 0;
  c.replaying = c.replayLeft > 0;
  const flowWindow = Number(hello.flow_window) || 0;
  // With a small window, waiting for 32 KiB would stall until the timer fires.
  if (flowWindow > 0) c.ackBytes = Math.max(1, Math.min(ACK_BYTES, Math.floor(flowWindow / 2)));

  if (c.number > 1) {
    // The replay repaints the screen from scratch. Reset from a write callback
    // so that output of the old connection still queued in xterm is drawn
    // first and the replay, written after, lands on a clean screen.
    term.write('', () => term.reset());
  }
  setStatus('connected', 'connected');
  sendSize();
}

function onExit(payload) {
  let code = '?';
  try {
    code = JSON.parse(new TextDecoder().decode(payload)).exit_code;
  } catch {
    // Keep '?': the shell is gone whatever the payload says.
  }
  finished = true;
  setStatus('exited', `shell exited (code ${code})`, true);
}

// ---- the connection ----

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${scheme}//${location.host}/api/v1/sessions/${encodeURIComponent(sessionId)}/terminal`;
  const ws = new WebSocket(url); // the HttpOnly gantry_session cookie goes along
  ws.binaryType = 'arraybuffer';
  const c = {
    number: ++connections,
    openedAt: 0,
    processed: 0,
    ackTimer: null,
    ackBytes: ACK_BYTES,
    replayLeft: 0,
    replaying: false,
  };
  socket = ws;
  conn = c;
  window.gantryTerminalSocket = ws;

  ws.onopen = () => {
    c.openedAt = Date.now();
  };

  ws.onmessage = (event) => {
    if (!(event.data instanceof ArrayBuffer) || event.data.byteLength === 0) return;
    const bytes = new Uint8Array(event.data);
    const payload = bytes.subarray(1);
    switch (bytes[0]) {
      case OP_DATA: onOutput(c, payload); break;
      case OP_HELLO: onHello(c, payload); break;
      case OP_EXIT: onExit(payload); break;
      default: break; // the protocol says: ignore opcodes you do not know
    }
  };

  ws.onclose = (event) => {
    clearTimeout(c.ackTimer);
    if (conn === c) {
      socket = null;
    }
    if (finished) return;
    if (FINAL_CLOSES.has(event.code)) {
      finished = true;
      setStatus('closed', FINAL_CLOSES.get(event.code), true);
      return;
    }
    if (c.openedAt && Date.now() - c.openedAt >= STABLE_MS) retryMs = RETRY_FIRST_MS;
    setStatus('reconnecting', 'reconnecting…');
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  };
}

// ---- input ----

term.onData((data) => {
  if (conn && conn.replaying && TERMINAL_REPLY.test(data)) return;
  send(OP_DATA, encoder.encode(data));
});

// Some mouse reports are bytes, not text: send each char code as one byte
// rather than UTF-8 encoding it.
term.onBinary((data) => {
  send(OP_DATA, Uint8Array.from(data, (ch) => ch.charCodeAt(0) & 0xff));
});

term.onResize(sendSize);

/**
 * Types `text` into the shell as if the person had typed it (the lab page's run
 * buttons use it). Returns false when there is no open connection to send it on.
 */
export function sendInput(text) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  send(OP_DATA, encoder.encode(text));
  term.focus();
  return true;
}

// ---- size ----

// A ResizeObserver sees every change of the terminal's box, from the window
// and from the page's own layout; fitting once per frame is enough.
let fitQueued = false;
new ResizeObserver(() => {
  if (fitQueued) return;
  fitQueued = true;
  requestAnimationFrame(() => {
    fitQueued = false;
    fit.fit(); // calls term.resize, whose onResize sends the new size
  });
}).observe(container);

// ---- copy and paste ----

// Selecting copies, as in most terminal emulators. The clipboard API needs a
// secure context and sometimes a user gesture; when it refuses, the selection
// can still be copied with Ctrl+Shift+C.
let copyTimer = null;
function copySelection() {
  if (!term.hasSelection() || !navigator.clipboard) return;
  navigator.clipboard.writeText(term.getSelection()).catch(() => {});
}
term.onSelectionChange(() => {
  clearTimeout(copyTimer);
  copyTimer = setTimeout(copySelection, 150); // once the drag settles
});

// Ctrl+C and Ctrl+V belong to the shell (interrupt, literal next); the
// shifted forms are the terminal's copy and paste. Returning false keeps
// xterm from sending them to the shell; for Ctrl+Shift+V the browser then
// fires a paste event, which xterm turns into input.
term.attachCustomKeyEventHandler((event) => {
  if (!(event.ctrlKey && event.shiftKey)) return true;
  if (event.code === 'KeyC') {
    if (event.type === 'keydown') {
      copySelection();
      event.preventDefault();
    }
    return false;
  }
  return event.code !== 'KeyV';
});

connect();
