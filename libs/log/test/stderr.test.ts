// The default destination is stderr, written synchronously: every line logged before
// process.exit() or a SIGKILL is there, and stdout stays clean.
import { spawn } from 'node:child_process';
import { join } from 'node:path';

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runChild(count: number, ending: 'exit' | 'kill'): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(__dirname, 'fixtures', 'exit-child.js'), String(count), ending], {
      env: { ...process.env, LOG_LEVEL: 'info' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function parseLines(stderr: string): { i?: number; msg: string; service: string; level: string }[] {
  return stderr
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { i?: number; msg: string; service: string; level: string });
}

// Enough lines to fill a pipe buffer several times over.
const count = 5000;

test('lines written just before process.exit() all reach stderr', async () => {
  const { code, stdout, stderr } = await runChild(count, 'exit');
  expect(code).toBe(3);
  expect(stdout).toBe('');
  const lines = parseLines(stderr);
  expect(lines).toHaveLength(count + 1);
  expect(lines[count - 1]).toMatchObject({ i: count - 1, service: 'exit-child' });
  expect(lines[count]).toMatchObject({ level: 'error', msg: 'exiting' });
}, 30000);

test('lines written just before a SIGKILL all reach stderr', async () => {
  // No exit hook runs on SIGKILL, so an asynchronous writer would lose what it still buffers.
  const { signal, stderr } = await runChild(count, 'kill');
  expect(signal).toBe('SIGKILL');
  const lines = parseLines(stderr);
  expect(lines).toHaveLength(count + 1);
  expect(lines[count]).toMatchObject({ level: 'error', msg: 'exiting' });
}, 30000);
