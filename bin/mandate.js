#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader, so `npx mandate` works from a clean clone.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
