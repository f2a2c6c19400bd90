// The recipe check: a fragment option that did not land in .config (merge_config.sh drops
// options whose dependencies are off, silently) must fail the build, named.
import { describe, expect, test } from 'vitest';
import { checkConfig, parseConfig } from '../../firmware/images/config-check.ts';
import { verifyFragments } from '../../firmware/images/build.ts';
import { ImageBuildError } from '../../firmware/images/host.ts';
import { ARCH_RECIPES, IMAGE_ARCHS, recipePath } from '../../firmware/images/recipe.ts';
import { readFileSync } from 'node:fs';

describe('checkConfig', () => {
  const dotConfig = [
    'CONFIG_A=y', '# CONFIG_B is not set', 'CONFIG_D=y', 'CONFIG_STR="ttyS0"', 'CONFIG_NUM=0x1000000', '',
  ].join('\n');

  test('honoured lines pass; "is not set" is honoured by absence too', () => {
    const wishes = parseConfig('CONFIG_A=y\n# CONFIG_B is not set\n# CONFIG_C is not set\nCONFIG_STR="ttyS0"\nCONFIG_NUM=0x1000000\n', 'frag');
    expect(wishes).toHaveLength(5);
    expect(checkConfig(wishes, dotConfig)).toEqual([]);
  });

  test('an option that was dropped, or set when it should not be, is reported with where it came from', () => {
    const wishes = parseConfig('# comment\nCONFIG_B=y\n# CONFIG_D is not set\nCONFIG_E=y\nCONFIG_NUM=0x2000000\n', 'frag.config');
    expect(checkConfig(wishes, dotConfig).map((m) => [m.option, m.value, m.actual, m.where])).toEqual([
      ['CONFIG_B', 'y', null, 'frag.config:2'],
      ['CONFIG_D', null, 'y', 'frag.config:3'],
      ['CONFIG_E', 'y', null, 'frag.config:4'],
      ['CONFIG_NUM', '0x2000000', '0x1000000', 'frag.config:5'],
    ]);
  });
});

describe('verifyFragments against the committed recipe', () => {
  for (const arch of IMAGE_ARCHS) {
    const fragments = ARCH_RECIPES[arch].fragments;
    // A .config that honours every fragment line (later fragments win, as in merge_config.sh).
    const honoured = new Map<string, string>();
    for (const f of fragments) {
      for (const w of parseConfig(readFileSync(recipePath(f), 'utf8'), f)) {
        honoured.set(w.option, w.value === null ? `# ${w.option} is not set` : `${w.option}=${w.value}`);
      }
    }
    const full = [...honoured.values()].join('\n');

    test(`${arch}: a config with every fragment line passes`, () => {
      expect(() => verifyFragments(fragments, full, arch)).not.toThrow();
    });

    test(`${arch}: a config missing CONFIG_PVH and CONFIG_VIRTIO_BLK fails, naming both`, () => {
      const broken = full.replace('CONFIG_PVH=y', '# CONFIG_PVH is not set').replace('CONFIG_VIRTIO_BLK=y\n', '');
      let message = '';
      try {
        verifyFragments(fragments, broken, arch);
      } catch (e) {
        expect(e).toBeInstanceOf(ImageBuildError);
        message = (e as Error).message;
      }
      expect(message).toMatch(new RegExp(`the ${arch} kernel config lacks 2 option`));
      expect(message).toMatch(/CONFIG_PVH =y \(common\.config:\d+\) but \.config has it not set/);
      expect(message).toMatch(/CONFIG_VIRTIO_BLK =y \(common\.config:\d+\)/);
    });
  }
});
