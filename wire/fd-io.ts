// The fd I/O both ends of the plugin protocol stand on: SOCK_SEQPACKET pairs, fd passing with
// SCM_RIGHTS, UNIX sockets on raw fds, eventfds, shared mappings, and a libuv watcher so the
// event loop can wait on any of these fds. Node's `net` module can neither create SOCK_SEQPACKET
// sockets nor carry SCM_RIGHTS, and no well-kept npm package does both, so it is native code
// (native/src/fdio/), built into two modules: the VMM's (native/vmm.ts) and the device
// processes' (native/device.ts). This file is only its TypeScript shape; whoever uses it is
// handed one of the two, so nothing in the wire layer loads native code itself.

export interface RecvResult {
  /** Bytes received; -1 when nothing was waiting (EAGAIN); 0 when the peer closed. */
  n: number;
  fds: number[];
  /** The kernel dropped passed fds (too many): the ones that arrived were closed. */
  truncated: boolean;
  /** A SOCK_SEQPACKET record was longer than the buffer. */
  messageTruncated: boolean;
}

export interface Watcher {
  /** 1 = readable (or hung up), 2 = writable. */
  start(events: number): void;
  stop(): void;
  close(): void;
}

export interface FdIo {
  socketpair(kind: 'seqpacket' | 'stream'): [number, number];
  setNonBlocking(fd: number, on?: boolean): void;
  /** A non-blocking listening UNIX stream socket bound at `path`. */
  listenUnix(path: string, backlog?: number): number;
  /** A connection, or -1 when none is pending. */
  acceptUnix(fd: number): number;
  connectUnix(path: string): number;
  /** Bytes sent, or -1 when the socket buffer is full. */
  sendMsg(fd: number, bytes: Uint8Array, fds?: readonly number[]): number;
  recvMsg(fd: number, buffer: Uint8Array): RecvResult;
  /** SO_TYPE of a socket (1 stream, 5 seqpacket), -1 if fd is not a socket. */
  socketType(fd: number): number;
  eventfd(initial?: number, nonBlocking?: boolean): number;
  eventfdWrite(fd: number, value?: number | bigint): void;
  /** The counter (reset to 0), or -1 when it was 0 on a non-blocking eventfd. */
  eventfdRead(fd: number): number;
  /** MAP_SHARED mapping of `fd` as an ArrayBuffer (at most 4 GiB); unmapped by unmap() or when collected. */
  mapFd(fd: number, offset: number, size: number, writable: boolean): ArrayBuffer;
  /** Unmaps a mapFd() buffer and detaches it: its views become empty, never dangling. */
  unmap(buffer: ArrayBuffer): void;
  closeFd(fd: number): void;
  Watcher: new (fd: number, callback: (events: number, error?: string) => void) => Watcher;
}
