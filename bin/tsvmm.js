#!/usr/bin/env node
// The tsvmm command. The VMM is written in TypeScript and run from source through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
