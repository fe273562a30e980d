// The layer order of docs/architecture.md, enforced: dependency-cruiser with
// the repository's rules (.dependency-cruiser.cjs) over src/, and over a small
// tree that breaks each kind of rule, so the rules are shown to bite.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const depcruise = path.join(root, 'node_modules', '.bin', 'depcruise');

function cruise(cwd: string): { status: number | null; out: string } {
  const r = spawnSync(depcruise, ['src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], {
    cwd,
    encoding: 'utf8',
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('architecture', () => {
  it('src/ has no import cycle and no import against the layer order', () => {
    const r = cruise(root);
    expect(r.out).toContain('no dependency violations found');
    expect(r.status).toBe(0);
  }, 60_000);

  it('the rules catch a cycle, an upward import and a type-only upward import', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'disque-layers-'));
    for (const d of ['core', 'server', 'commands']) mkdirSync(path.join(dir, 'src', d), { recursive: true });
    copyFileSync(path.join(root, '.dependency-cruiser.cjs'), path.join(dir, '.dependency-cruiser.cjs'));
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true }, include: ['src'] }),
    );
    const put = (f: string, text: string) => writeFileSync(path.join(dir, 'src', f), text);
    put('core/a.ts', "import { b } from './b.js';\nexport const a = () => b;\n");
    put('core/b.ts', "import { a } from './a.js';\nexport const b = () => a;\n");
    put('core/up.ts', "import { node } from '../server/node.js';\nexport const up = node;\n");
    put('commands/peek.ts', "import type { Node } from '../server/node.js';\nexport const peek = (n: Node) => n;\n");
    put('server/node.ts', 'export const node = 1;\nexport type Node = { id: number };\n');
    const r = cruise(dir);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/no-circular: src\/core\/a\.ts/);
    expect(r.out).toMatch(/layer-core: src\/core\/up\.ts → src\/server\/node\.ts/);
    expect(r.out).toMatch(/layer-commands: src\/commands\/peek\.ts → src\/server\/node\.ts/);
  }, 60_000);
});
