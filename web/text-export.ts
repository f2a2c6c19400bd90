// Console bytes as plain text for the "download scrollback" link: terminal control sequences
// (colours, cursor movement, titles) removed and line endings normalised, so the file reads
// like what was on the screen rather than like a byte dump.

// CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), DCS/SOS/PM/APC strings, two-byte escapes,
// and the 8-bit C1 CSI. Other C0 controls except \t \n \b are dropped afterwards.
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[PX^_][^\x1b]*(?:\x1b\\)?|\x1b[ -/]*[0-~]|\x9b[0-?]*[ -/]*[@-~]/g;
const CONTROLS = /[\x00-\x07\x0b\x0c\x0e-\x1f\x7f]/g;

export function consoleBytesToText(bytes: Uint8Array): string {
  let s = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  s = s.replace(ESCAPES, '');
  s = s.replace(/\r+\n/g, '\n');
  // A lone CR returns to the start of the line and later text overwrites earlier text.
  s = s
    .split('\n')
    .map((line) => line.split('\r').reduce((screen, seg) => seg + screen.slice(seg.length), ''))
    .join('\n');
  return applyBackspaces(s).replace(CONTROLS, '');
}

// Backspace moves left and the next character overwrites; shells erase with "\b \b". Treating
// it as "delete the previous character on this line" gives the same text in one linear pass.
function applyBackspaces(s: string): string {
  if (!s.includes('\b')) return s;
  const out: string[] = [];
  for (const ch of s) {
    if (ch !== '\b') out.push(ch);
    else if (out.length > 0 && out[out.length - 1] !== '\n') out.pop();
  }
  return out.join('');
}
