// Standalone entry for the image build (the tsvmm CLI's `image build` calls buildImages too):
//   npx tsx firmware/images/main.ts [--force] [--arch x86_64|i386]...
import { buildImages, ImageBuildError, IMAGE_ARCHS, type ImageArch } from './build.ts';

const args = process.argv.slice(2);
const archs: ImageArch[] = [];
let force = false;
for (let i = 0; i < args.length; i++) {
  const a = args[i]!;
  if (a === '--force') force = true;
  else if (a === '--arch' && IMAGE_ARCHS.includes(args[i + 1] as ImageArch)) archs.push(args[++i] as ImageArch);
  else {
    process.stderr.write(`usage: firmware/images/main.ts [--force] [--arch ${IMAGE_ARCHS.join('|')}]...\n`);
    process.exit(2);
  }
}
try {
  const wanted = archs.length ? archs : IMAGE_ARCHS;
  const images = await buildImages({ archs: wanted, force });
  for (const a of wanted) process.stdout.write(`${a}: ${images[a].dir}\n`);
} catch (e) {
  if (!(e instanceof ImageBuildError)) throw e;
  process.stderr.write(`tsvmm image build: ${e.message}\n`);
  process.exit(e.exitCode);
}
