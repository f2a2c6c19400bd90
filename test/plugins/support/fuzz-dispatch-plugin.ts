// A plugin that misbehaves on its dispatch socket, at random (seeded): it answers most
// commands correctly, and otherwise sends records of the wrong size, answers twice, answers a
// posted write, stays silent, or closes the socket. Used by fuzz.test.ts; argv: <seed> <fault %>.
import { Plugin } from '../../../devices/plugin-sdk/plugin.ts';
import { deviceFdIo } from '../../../native/device.ts';
import { Command, encodeIoregion, IoregionFlag } from '../../../wire/protocol.ts';
import { prng } from './prng.ts';

const rnd = prng(Number(process.argv[2] ?? 1));
const faultPercent = Number(process.argv[3] ?? 5);
const native = deviceFdIo();
const plugin = await Plugin.connect({ name: 'fuzz-dispatch' });
const [mine, vmm] = native.socketpair('seqpacket');
native.setNonBlocking(mine, true);
const base = BigInt(plugin.slot.mmioBase);
const regions: [bigint, bigint, number][] = [[0n, 0x100n, 0], [0x100n, 0x100n, IoregionFlag.POSTED_WRITES], [0x200n, 0n, IoregionFlag.POSTED_WRITES]];
for (const [off, size, flags] of regions) {
  await plugin.request(Command.REGISTER_REGION, encodeIoregion({ guestPaddr: base + off, memorySize: size, userData: off, readFd: 0, writeFd: 0, flags }), [vmm]);
}
const rec = new Uint8Array(64);
const ok = new Uint8Array(32);
const w = new native.Watcher(mine, () => {
  for (;;) {
    const r = native.recvMsg(mine, rec);
    if (r.n <= 0) return;
    const wantResp = (rec[1]! & 0x10) !== 0;
    if (rnd.int(100) >= faultPercent) {
      if (wantResp) native.sendMsg(mine, ok);
      continue;
    }
    switch (rnd.int(5)) {
      case 0: native.sendMsg(mine, rnd.bytes(rnd.pick([0, 1, 8, 31, 33, 64]))); break; // wrong size
      case 1: native.sendMsg(mine, ok); native.sendMsg(mine, ok); break; // answered twice (or a posted write answered)
      case 2: break; // silence
      case 3: w.close(); native.closeFd(mine); return; // hang up
      default: native.sendMsg(mine, rnd.bytes(32)); break; // garbage of the right size: a valid answer
    }
  }
});
w.start(1);
await plugin.ready();
