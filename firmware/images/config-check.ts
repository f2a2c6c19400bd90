// Checking that a config fragment landed. merge_config.sh and olddefconfig silently drop an
// option whose dependencies are off, so a fragment line is a wish until .config confirms it.

export interface ConfigWish {
  option: string;
  /** 'y', 'm', a number or quoted string, or null for "# CONFIG_X is not set". */
  value: string | null;
  /** Fragment file and line, for the error message. */
  where: string;
}

export interface ConfigMismatch extends ConfigWish {
  /** What .config has instead (null: not set or absent). */
  actual: string | null;
}

const SET = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;

/** The option assignments of a fragment or .config; comments and blank lines are skipped. */
export function parseConfig(text: string, file = 'config'): ConfigWish[] {
  const wishes: ConfigWish[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    const set = SET.exec(line);
    const unset = UNSET.exec(line);
    if (set) wishes.push({ option: set[1]!, value: set[2]!, where: `${file}:${i + 1}` });
    else if (unset) wishes.push({ option: unset[1]!, value: null, where: `${file}:${i + 1}` });
  });
  return wishes;
}

/** The fragment lines the final .config does not honour. "Not set" is honoured by absence too. */
export function checkConfig(fragments: readonly ConfigWish[], dotConfig: string): ConfigMismatch[] {
  const actual = new Map<string, string | null>();
  for (const w of parseConfig(dotConfig, '.config')) actual.set(w.option, w.value);
  const missing: ConfigMismatch[] = [];
  for (const wish of fragments) {
    const have = actual.get(wish.option) ?? null;
    if (have !== wish.value) missing.push({ ...wish, actual: have });
  }
  return missing;
}

export function describeMismatches(missing: readonly ConfigMismatch[]): string {
  return missing.map((m) => {
    const want = m.value === null ? 'not set' : `=${m.value}`;
    const got = m.actual === null ? 'not set' : `=${m.actual}`;
    return `  ${m.option} ${want} (${m.where}) but .config has it ${got}`;
  }).join('\n');
}
