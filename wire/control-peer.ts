// One end of a control channel, the same code at both ends (the VMM's plugin host and the
// plugin SDK): message ids, requests waiting for their replies, replies and error replies,
// notifications that take no reply, console output in chunks, and vfio-user's argsz rule for
// replies whose size the requester cannot know. Replies complete requests at once, never queued
// behind commands (a command's handler may itself be waiting for a reply); commands go to the
// owner in arrival order. A reply that answers no request is a protocol violation and closes
// the channel. Framing is control-channel.ts's; payloads are protocol.ts's.
import { ControlChannel, closeQuietly, type Message } from './control-channel.ts';
import type { FdIo } from './fd-io.ts';
import { buildMessage, COMMAND_NAMES, encodeConsole, ERRNO_NAMES, Flags } from './protocol.ts';

export type { Message } from './control-channel.ts';

/** The other end answered a request with an error: `errno` is the protocol's (EEXIST, EPERM, ...). */
export class RequestError extends Error {
  constructor(readonly command: number, readonly errno: number, peer = 'the peer') {
    super(`${peer} refused ${COMMAND_NAMES[command] ?? `command ${command}`}: ${ERRNO_NAMES[errno] ?? `errno ${errno}`}`);
  }
}

/** The channel closed (or was never open) before the request was answered. */
export class ConnectionClosedError extends Error {
  override readonly name = 'ConnectionClosedError';
}

export interface PeerEvents {
  /** A command from the other end. Its fds belong to the handler: keep them or close them. */
  command(m: Message): void;
  /** The channel is gone (`byPeer`: the other end closed or broke it); pending requests are rejected. */
  closed(reason: string, byPeer: boolean): void;
}

interface Pending {
  command: number;
  resolve(m: Message): void;
  reject(e: Error): void;
}

/** What a two-pass (argsz) reply decodes to: `complete` is false when only the fixed part fitted. */
export type SizedReply<T> = { argsz: number; complete: false } | { argsz: number; complete: true; value: T };

export class ControlPeer {
  private readonly channel: ControlChannel;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Why the channel closed; undefined while it is open. */
  closeReason: string | undefined;

  /** `peer` names the other end in errors ("the VMM", a plugin's slot name). */
  constructor(fd: number, io: FdIo, private readonly peer: string, private readonly events: PeerEvents) {
    this.channel = new ControlChannel(fd, io, {
      message: (m) => ((m.header.flags & Flags.TYPE_MASK) === Flags.TYPE_REPLY ? this.onReply(m) : this.events.command(m)),
      closed: (reason, byPeer) => this.onClosed(reason, byPeer),
    });
  }

  get closed(): boolean {
    return this.closeReason !== undefined;
  }

  /** Send a command and wait for its reply; rejects with RequestError on an error reply, or when the channel closes first. */
  request(command: number, payload: Uint8Array, fds: readonly number[] = []): Promise<Message> {
    if (this.closed) return Promise.reject(new ConnectionClosedError(`not connected to ${this.peer}: ${this.closeReason}`));
    const id = this.allocateId();
    return new Promise<Message>((resolve, reject) => {
      this.pending.set(id, { command, resolve, reject });
      // A failed send closes the channel, and closing rejects this request with the reason.
      this.channel.send(buildMessage(id, command, Flags.TYPE_COMMAND, payload, { fds: fds.length }), fds);
    }).then((m) => {
      if (m.header.flags & Flags.ERROR) {
        m.fds.forEach(closeQuietly);
        throw new RequestError(command, m.header.error, this.peer);
      }
      return m;
    });
  }

  /**
   * vfio-user's argsz rule: ask with the fixed size, learn the full size from the reply, ask once
   * more with that. A peer whose answer keeps growing is refused.
   */
  async requestSized<T>(command: number, fixedArgsz: number, encode: (argsz: number) => Uint8Array,
    decode: (reply: Message) => SizedReply<T> | string): Promise<{ value: T; reply: Message }> {
    let argsz = fixedArgsz;
    for (let attempt = 0; attempt < 2; attempt++) {
      const reply = await this.request(command, encode(argsz));
      const r = decode(reply);
      if (typeof r === 'string') {
        reply.fds.forEach(closeQuietly);
        throw new Error(r);
      }
      if (r.complete) return { value: r.value, reply };
      reply.fds.forEach(closeQuietly);
      argsz = r.argsz;
    }
    throw new Error(`${this.peer} keeps growing its ${COMMAND_NAMES[command]} reply`);
  }

  /** A command that takes no reply (NO_REPLY). */
  notify(command: number, payload: Uint8Array): void {
    this.channel.send(buildMessage(this.allocateId(), command, Flags.TYPE_COMMAND, payload, { noReply: true }));
  }

  /** Console bytes as one NO_REPLY message per chunk (CONSOLE_WRITE, CONSOLE_INPUT). */
  sendConsole(command: number, console: number, bytes: Uint8Array): void {
    for (const payload of encodeConsole(console, bytes)) this.notify(command, payload);
  }

  /** Answer command `m` (nothing is sent if it asked for no reply). */
  reply(m: Message, payload: Uint8Array, fds: readonly number[] = []): void {
    if (m.header.flags & Flags.NO_REPLY) return;
    this.channel.send(buildMessage(m.header.id, m.header.command, Flags.TYPE_REPLY, payload, { fds: fds.length }), fds);
  }

  replyError(m: Message, errno: number): void {
    if (m.header.flags & Flags.NO_REPLY) return;
    this.channel.send(buildMessage(m.header.id, m.header.command, Flags.TYPE_REPLY, new Uint8Array(0), { error: errno }));
  }

  /** Raw bytes on the channel, framing untouched (tests and fuzzers). */
  sendRaw(bytes: Uint8Array, fds: readonly number[] = []): boolean {
    return this.channel.send(bytes, fds);
  }

  close(reason: string): void {
    this.channel.close(reason);
  }

  private allocateId(): number {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0xffff;
    return id;
  }

  /** The fds of a reply go to the request's owner with the message; those of a stray reply are closed. */
  private onReply(m: Message): void {
    const p = this.pending.get(m.header.id);
    const violation = !p ? `reply ${m.header.id} answers no request sent to ${this.peer}`
      : m.header.command !== p.command ? `reply ${m.header.id} is for command ${m.header.command}, the request was ${COMMAND_NAMES[p.command]}`
        : undefined;
    if (violation) {
      m.fds.forEach(closeQuietly);
      return this.close(`protocol violation: ${violation}`);
    }
    this.pending.delete(m.header.id);
    p!.resolve(m);
  }

  private onClosed(reason: string, byPeer: boolean): void {
    this.closeReason = reason;
    const error = new ConnectionClosedError(`the connection to ${this.peer} closed: ${reason}`);
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    this.events.closed(reason, byPeer);
  }
}
