// The web console's wire protocol (see docs/web-console.md). Binary WebSocket frames carry
// console bytes, both ways, for the viewer's selected console. Text frames carry one small JSON
// control message each. This module is shared by the server and the page, so it uses no Node
// APIs; every message from the other side is validated here before anyone acts on it.

export const PROTOCOL_VERSION = 1;
export const WS_PATH = '/ws';

export type ConsoleName = 'ttyS0' | 'hvc0';
export const CONSOLES: readonly ConsoleName[] = ['ttyS0', 'hvc0'];
export type VmState = 'starting' | 'running' | 'paused' | 'stopped';
export type PowerAction = 'reset' | 'poweroff';

/** Longest text frame either side accepts; control messages are tiny. */
export const MAX_CONTROL_BYTES = 1024;

/** WebSocket close codes (4000-4999 are for applications). */
export const CloseCode = {
  shuttingDown: 1001,
  tooBig: 1009,
  slowViewer: 4000,
  keepaliveTimeout: 4001,
  tooManyViewers: 4002,
  protocolError: 4003,
} as const;

export interface StatusMessage {
  type: 'status';
  state: VmState;
  backend: string;
  exitCode?: number;
  reason?: string;
}

export type ErrorCode = 'read-only' | 'input-rate' | 'bad-message' | 'unknown-console';

export type ServerMessage =
  | {
      type: 'hello';
      version: number;
      access: 'full' | 'read-only';
      consoles: ConsoleName[];
      keepaliveMs: number;
      maxInputFrame: number;
    }
  | StatusMessage
  /** The viewer now shows `console`: reset the screen; the next `scrollback` binary bytes replay its history. */
  | { type: 'console'; console: ConsoleName; scrollback: number }
  | { type: 'ping'; t: number }
  | { type: 'pong'; t: number }
  | { type: 'error'; code: ErrorCode; message: string };

export type ClientMessage =
  | { type: 'resize'; cols: number; rows: number }
  | { type: 'console'; console: ConsoleName }
  | { type: 'power'; action: PowerAction }
  | { type: 'ping'; t: number }
  | { type: 'pong'; t: number };

export type Parsed<T> = { ok: true; message: T } | { ok: false; error: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isDimension(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 10_000;
}

function isTimestamp(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

export function isConsoleName(v: unknown): v is ConsoleName {
  return typeof v === 'string' && (CONSOLES as readonly string[]).includes(v);
}

function decodeJson(text: string): Parsed<Record<string, unknown>> {
  if (text.length > MAX_CONTROL_BYTES) return { ok: false, error: `control message longer than ${MAX_CONTROL_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: 'control message is not JSON' };
  }
  if (!isRecord(value) || typeof value.type !== 'string') return { ok: false, error: 'control message must be an object with a string "type"' };
  return { ok: true, message: value };
}

/** Validates a text frame from a viewer. */
export function parseClientMessage(text: string): Parsed<ClientMessage> {
  const d = decodeJson(text);
  if (!d.ok) return d;
  const m = d.message;
  switch (m.type) {
    case 'resize':
      if (!isDimension(m.cols) || !isDimension(m.rows)) return { ok: false, error: 'resize needs integer cols and rows in 1..10000' };
      return { ok: true, message: { type: 'resize', cols: m.cols, rows: m.rows } };
    case 'console':
      if (!isConsoleName(m.console)) return { ok: false, error: `console must be one of ${CONSOLES.join(', ')}` };
      return { ok: true, message: { type: 'console', console: m.console } };
    case 'power':
      if (m.action !== 'reset' && m.action !== 'poweroff') return { ok: false, error: 'power action must be "reset" or "poweroff"' };
      return { ok: true, message: { type: 'power', action: m.action } };
    case 'ping':
    case 'pong':
      if (!isTimestamp(m.t)) return { ok: false, error: `${m.type} needs a numeric "t"` };
      return { ok: true, message: { type: m.type, t: m.t } };
    default:
      return { ok: false, error: `unknown control message type ${JSON.stringify(m.type).slice(0, 40)}` };
  }
}

/** Validates a text frame from the server (the page trusts the server, but not blindly). */
export function parseServerMessage(text: string): Parsed<ServerMessage> {
  const d = decodeJson(text);
  if (!d.ok) return d;
  const m = d.message;
  switch (m.type) {
    case 'hello':
    case 'status':
    case 'console':
    case 'ping':
    case 'pong':
    case 'error':
      return { ok: true, message: m as unknown as ServerMessage };
    default:
      return { ok: false, error: `unknown server message type ${JSON.stringify(m.type).slice(0, 40)}` };
  }
}

export function encode(message: ServerMessage | ClientMessage): string {
  return JSON.stringify(message);
}
