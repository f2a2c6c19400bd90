// Framing for the control channel (a UNIX stream socket): splits the byte stream into
// messages, pairs each with the fds it declares, and sends messages with their fds. It validates
// only the framing (docs/protocol.md §2); requests and replies are control-peer.ts's, payload
// rules each end's. A framing error closes the connection: with a stream socket there is no way
// to find the next message boundary again.
import { closeSync } from 'node:fs';
import type { FdIo, Watcher } from './fd-io.ts';
import { decodeHeader, fdCount, Flags, HEADER_SIZE, MAX_MESSAGE_FDS, MAX_MESSAGE_SIZE, type Header } from './protocol.ts';

export interface Message {
  header: Header;
  payload: Uint8Array;
  /** Received fds, owned by the handler: close the ones you do not keep. */
  fds: number[];
}

export interface ChannelEvents {
  message(m: Message): void;
  /** The connection is closed; `reason` says why (peer closed, framing error, local close). */
  closed(reason: string, byPeer: boolean): void;
}

export class ControlChannel {
  private readonly watcher: Watcher;
  private inbuf = new Uint8Array(2 * MAX_MESSAGE_SIZE);
  private inlen = 0;
  private pendingFds: number[] = [];
  private closedReason: string | undefined;

  constructor(readonly fd: number, private readonly native: FdIo, private readonly events: ChannelEvents) {
    this.native.setNonBlocking(fd, true);
    this.watcher = new this.native.Watcher(fd, () => this.onReadable());
    this.watcher.start(1);
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  /** Send one complete message (header included) with its fds. False if the connection is closed. */
  send(bytes: Uint8Array, fds: readonly number[] = []): boolean {
    if (this.closedReason !== undefined) return false;
    let off = 0;
    try {
      while (off < bytes.length) {
        // Control messages are small and rare; a peer that lets its socket buffer fill up is
        // not reading its control channel, and waiting for it would stall the VMM.
        const n = this.native.sendMsg(this.fd, off === 0 ? bytes : bytes.subarray(off), off === 0 ? fds : []);
        if (n < 0) {
          this.close('the peer stopped reading its control socket (send buffer full)', false);
          return false;
        }
        off += n;
      }
    } catch (e) {
      this.close(`send failed: ${(e as Error).message}`, true);
      return false;
    }
    return true;
  }

  close(reason: string, byPeer = false): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    this.watcher.close();
    for (const fd of this.pendingFds) closeQuietly(fd);
    this.pendingFds = [];
    closeQuietly(this.fd);
    this.events.closed(reason, byPeer);
  }

  private onReadable(): void {
    for (let i = 0; i < 64 && this.closedReason === undefined; i++) {
      let r;
      try {
        r = this.native.recvMsg(this.fd, this.inbuf.subarray(this.inlen));
      } catch (e) {
        this.close(`receive failed: ${(e as Error).message}`, true);
        return;
      }
      if (r.n < 0) return;
      if (r.n === 0) {
        this.close('the peer closed the control socket', true);
        return;
      }
      if (r.truncated) {
        this.close('the peer sent more fds in one message than the protocol allows', false);
        return;
      }
      this.pendingFds.push(...r.fds);
      this.inlen += r.n;
      if (!this.parse()) return;
    }
  }

  /** Hand every complete message to the handler. False once the connection is closed. */
  private parse(): boolean {
    let off = 0;
    while (this.inlen - off >= HEADER_SIZE && this.closedReason === undefined) {
      const header = decodeHeader(new DataView(this.inbuf.buffer, this.inbuf.byteOffset + off, HEADER_SIZE));
      const problem = framingProblem(header);
      if (problem) {
        this.close(`malformed message: ${problem}`, false);
        return false;
      }
      if (this.inlen - off < header.size) break;
      const nfds = fdCount(header.flags);
      if (this.pendingFds.length < nfds) {
        this.close(`malformed message: header declares ${nfds} fds but ${this.pendingFds.length} arrived with it`, false);
        return false;
      }
      const fds = this.pendingFds.splice(0, nfds);
      const payload = this.inbuf.slice(off + HEADER_SIZE, off + header.size);
      off += header.size;
      this.events.message({ header, payload, fds });
    }
    if (this.closedReason !== undefined) return false;
    this.inbuf.copyWithin(0, off, this.inlen);
    this.inlen -= off;
    // fds arrive with the first byte of the message that declares them; fds left over with
    // no message still being received belong to nothing.
    if (this.inlen === 0 && this.pendingFds.length > 0) {
      this.close(`malformed message: ${this.pendingFds.length} fds arrived that no message declared`, false);
      return false;
    }
    return true;
  }
}

function framingProblem(h: Header): string | undefined {
  if (h.size < HEADER_SIZE) return `message size ${h.size} is smaller than the 16-byte header`;
  if (h.size > MAX_MESSAGE_SIZE) return `message size ${h.size} exceeds the maximum ${MAX_MESSAGE_SIZE}`;
  if ((h.flags & Flags.RESERVED) !== 0) return `reserved flag bits set (flags 0x${h.flags.toString(16)})`;
  const type = h.flags & Flags.TYPE_MASK;
  if (type !== Flags.TYPE_COMMAND && type !== Flags.TYPE_REPLY) return `unknown message type ${type}`;
  if (fdCount(h.flags) > MAX_MESSAGE_FDS) return `${fdCount(h.flags)} fds declared, at most ${MAX_MESSAGE_FDS} allowed`;
  return undefined;
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing to release
  }
}
