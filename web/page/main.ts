/// <reference lib="dom" />
// The browser side of the web console: one xterm.js terminal showing the selected guest
// console, connected to tsvmm over a WebSocket that reconnects with backoff on its own. The
// server is the authority on access (this page only hides controls a read-only viewer cannot
// use) and on history (each connection starts with the console's scrollback).
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import {
  CloseCode,
  encode,
  isConsoleName,
  parseServerMessage,
  WS_PATH,
  type ClientMessage,
  type ConsoleName,
  type StatusMessage,
} from '../protocol.ts';
import './style.css';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const connBadge = $<HTMLSpanElement>('conn');
const vmBadge = $<HTMLSpanElement>('vm');
const accessBadge = $<HTMLSpanElement>('access');
const consoleSelect = $<HTMLSelectElement>('console');
const download = $<HTMLAnchorElement>('download');
const resetButton = $<HTMLButtonElement>('reset');
const poweroffButton = $<HTMLButtonElement>('poweroff');
const notice = $<HTMLDivElement>('notice');

const params = new URLSearchParams(location.search);
const token = params.get('token') ?? '';
let selected: ConsoleName = isConsoleName(params.get('console')) ? (params.get('console') as ConsoleName) : 'ttyS0';
consoleSelect.value = selected;

const term = new Terminal({ convertEol: false, cursorBlink: true, scrollback: 10_000, fontSize: 14 });
const fit = new FitAddon();
term.loadAddon(fit);
term.open($('terminal'));
fit.fit();
new ResizeObserver(() => fit.fit()).observe($('terminal'));

let noticeTimer: number | undefined;
function say(text: string, sticky = false): void {
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  if (!sticky) noticeTimer = window.setTimeout(() => (notice.hidden = true), 6000);
}

function setConnection(state: 'connecting' | 'connected' | 'reconnecting' | 'refused' | 'closed', text: string): void {
  connBadge.dataset.state = state;
  connBadge.textContent = text;
  const canControl = state === 'connected' && accessBadge.dataset.access === 'full';
  resetButton.disabled = poweroffButton.disabled = !canControl;
}

function showStatus(s: StatusMessage): void {
  vmBadge.dataset.state = s.state;
  const exit = s.state === 'stopped' && s.exitCode !== undefined ? ` (exit ${s.exitCode})` : '';
  vmBadge.textContent = `VM ${s.state}${exit} · ${s.backend}`;
  vmBadge.title = s.reason ?? 'Virtual machine state';
}

function updateLinks(): void {
  const q = new URLSearchParams({ token, console: selected });
  download.href = `/scrollback?${q}`;
  download.download = `tsvmm-${selected}-scrollback.txt`;
  const here = new URLSearchParams(location.search);
  here.set('console', selected);
  history.replaceState(null, '', `?${here}`);
}
updateLinks();

// ---- the connection ----

const encoder = new TextEncoder();
let ws: WebSocket | undefined;
let attempt = 0;
let keepaliveMs = 20_000;
let lastHeard = 0;
let pingTimer: number | undefined;
let retryTimer: number | undefined;

function send(m: ClientMessage): void {
  if (ws?.readyState === WebSocket.OPEN) ws.send(encode(m));
}

function connect(): void {
  clearTimeout(retryTimer);
  setConnection(attempt === 0 ? 'connecting' : 'reconnecting', attempt === 0 ? 'connecting…' : `reconnecting (attempt ${attempt + 1})…`);
  const q = new URLSearchParams({ token, console: selected });
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${WS_PATH}?${q}`);
  socket.binaryType = 'arraybuffer';
  ws = socket;
  let greeted = false;

  socket.onmessage = (ev: MessageEvent) => {
    lastHeard = performance.now();
    if (ev.data instanceof ArrayBuffer) {
      term.write(new Uint8Array(ev.data));
      return;
    }
    const parsed = parseServerMessage(String(ev.data));
    if (!parsed.ok) return console.warn('tsvmm: ignoring server message:', parsed.error);
    const m = parsed.message;
    switch (m.type) {
      case 'hello':
        greeted = true;
        attempt = 0;
        keepaliveMs = m.keepaliveMs;
        accessBadge.dataset.access = m.access;
        accessBadge.hidden = m.access === 'full';
        term.options.disableStdin = m.access !== 'full';
        setConnection('connected', 'connected');
        send({ type: 'resize', cols: term.cols, rows: term.rows });
        startKeepalive(socket);
        return;
      case 'status':
        return showStatus(m);
      case 'console':
        // The scrollback replay that follows redraws the screen from scratch.
        term.reset();
        selected = m.console;
        consoleSelect.value = selected;
        updateLinks();
        return;
      case 'ping':
        return send({ type: 'pong', t: m.t });
      case 'pong':
        return;
      case 'error':
        return say(m.message);
    }
  };

  socket.onclose = (ev: CloseEvent) => {
    if (ws !== socket) return;
    clearInterval(pingTimer);
    ws = undefined;
    const why = ev.reason || (ev.code === CloseCode.shuttingDown ? 'tsvmm shut down' : `code ${ev.code}`);
    if (greeted || ev.reason) say(`connection closed: ${why}`);
    void retry(greeted);
  };
}

async function retry(wasConnected: boolean): Promise<void> {
  // A connection refused before the greeting is either a server that is gone or a token it no
  // longer accepts (tsvmm restarted). Only the first is worth retrying.
  if (!wasConnected) {
    try {
      const r = await fetch(`/check?token=${encodeURIComponent(token)}`, { cache: 'no-store' });
      if (r.status === 401) {
        setConnection('refused', 'refused: invalid token');
        say('The server refused this page\'s access token. Open the URL that tsvmm printed.', true);
        return;
      }
    } catch {
      // server unreachable: keep trying
    }
  }
  const delay = Math.min(10_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);
  attempt++;
  setConnection('reconnecting', `disconnected · retrying in ${(delay / 1000).toFixed(1)} s`);
  retryTimer = window.setTimeout(connect, delay);
}

// Browsers cannot see WebSocket-level pings, so liveness is checked with JSON pings: a
// connection silent for 2.5 intervals is presumed dead and replaced.
function startKeepalive(socket: WebSocket): void {
  clearInterval(pingTimer);
  lastHeard = performance.now();
  pingTimer = window.setInterval(() => {
    if (performance.now() - lastHeard > 2.5 * keepaliveMs) {
      socket.onclose = null;
      socket.close();
      clearInterval(pingTimer);
      ws = undefined;
      say('connection stalled; reconnecting');
      void retry(true);
      return;
    }
    send({ type: 'ping', t: Date.now() });
  }, keepaliveMs);
}

// ---- user input ----

term.onData((data) => {
  if (accessBadge.dataset.access === 'full' && ws?.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
});
// Some mouse reports are raw bytes, one per char code.
term.onBinary((data) => {
  if (accessBadge.dataset.access === 'full' && ws?.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff));
});
term.onResize(({ cols, rows }) => send({ type: 'resize', cols, rows }));

consoleSelect.addEventListener('change', () => {
  if (isConsoleName(consoleSelect.value)) send({ type: 'console', console: consoleSelect.value });
});
resetButton.addEventListener('click', () => {
  if (confirm('Reset the virtual machine? Unsaved guest state is lost.')) send({ type: 'power', action: 'reset' });
});
poweroffButton.addEventListener('click', () => {
  if (confirm('Power off the virtual machine?')) send({ type: 'power', action: 'poweroff' });
});

window.addEventListener('online', () => {
  if (!ws) connect();
});

term.focus();
connect();
