// A reader of "newc" cpio archives (what gen_init_cpio writes), to check initramfs contents.

export interface CpioEntry {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  rdevmajor: number;
  rdevminor: number;
  data: Uint8Array;
}

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export function readCpio(bytes: Uint8Array): CpioEntry[] {
  const text = new TextDecoder('latin1');
  const entries: CpioEntry[] = [];
  let o = 0;
  const align4 = (n: number) => Math.ceil(n / 4) * 4;
  for (;;) {
    const magic = text.decode(bytes.subarray(o, o + 6));
    if (magic !== '070701') throw new Error(`bad cpio magic ${JSON.stringify(magic)} at ${o}`);
    const field = (i: number) => parseInt(text.decode(bytes.subarray(o + 6 + i * 8, o + 14 + i * 8)), 16);
    const namesize = field(11);
    const filesize = field(6);
    const name = text.decode(bytes.subarray(o + 110, o + 110 + namesize - 1));
    const dataAt = align4(o + 110 + namesize);
    if (name === 'TRAILER!!!') break;
    entries.push({
      name, mode: field(1), uid: field(2), gid: field(3), mtime: field(5),
      rdevmajor: field(9), rdevminor: field(10), data: bytes.subarray(dataAt, dataAt + filesize),
    });
    o = align4(dataAt + filesize);
  }
  return entries;
}
