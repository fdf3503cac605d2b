// How the CLI finds its cluster, proved on temporary directory trees: NATS_URL wins;
// a named data directory means its nats.url and nothing else; otherwise the nearest
// `.strata/nats.url` from the current directory up to the root, then the checkout's;
// and with none of them, an error that says where it looked (never a default URL).
// Also the message for an unreachable URL: it names the URL and where it came from,
// and says when the `strata up` that wrote it is no longer running.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, StrataError } from '@strata/errors';
import { ClusterNotFound, NAMED_TIMEOUT, findCluster, unreachable, upState, withUrl } from '../src/client';

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'strata-discovery-'));
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

/** Writes `<dir>/.strata/nats.url` (or `<dir>/nats.url` with `dataDir`) and returns the data directory. */
function cluster(dir: string, url: string, dataDir = false): string {
  const data = dataDir ? dir : join(dir, '.strata');
  mkdirSync(data, { recursive: true });
  writeFileSync(join(data, 'nats.url'), `${url}\n`);
  return data;
}

function sub(...parts: string[]): string {
  const dir = join(root, ...parts);
  mkdirSync(dir, { recursive: true });
  return dir;
}

describe('findCluster', () => {
  it('takes NATS_URL first, whatever files exist', () => {
    cluster(root, 'nats://127.0.0.1:1000');
    expect(findCluster({ natsUrl: 'nats://a:4222,nats://b:4222', cwd: root, dir: root, checkout: root })).toEqual({ url: 'nats://a:4222,nats://b:4222', source: 'NATS_URL' });
  });

  it('ignores an empty NATS_URL', () => {
    const data = cluster(root, 'nats://127.0.0.1:1000');
    expect(findCluster({ natsUrl: '  ', cwd: root })).toEqual({ url: 'nats://127.0.0.1:1000', source: join(data, 'nats.url'), dir: data });
  });

  it('reads the nats.url of a named data directory, relative to the current directory', () => {
    const data = cluster(sub('var', 'strata'), 'nats://127.0.0.1:2000', true);
    cluster(root, 'nats://127.0.0.1:1000');
    expect(findCluster({ dir: 'var/strata', cwd: root })).toEqual({ url: 'nats://127.0.0.1:2000', source: join(data, 'nats.url'), dir: data });
  });

  it('with a named data directory that holds no nats.url, fails naming that file, without searching elsewhere', () => {
    cluster(root, 'nats://127.0.0.1:1000');
    const empty = sub('empty');
    expect(() => findCluster({ dir: empty, cwd: root, checkout: root })).toThrow(new ClusterNotFound(`no cluster in ${empty}: ${join(empty, 'nats.url')} does not exist; start one with "npm run up" (in the checkout), or set NATS_URL to its NATS servers`));
  });

  it('finds .strata/nats.url in a parent of the current directory (cd services && ../strata status)', () => {
    const data = cluster(root, 'nats://127.0.0.1:1000');
    const deep = sub('services', 'config', 'src');
    expect(findCluster({ cwd: deep })).toEqual({ url: 'nats://127.0.0.1:1000', source: join(data, 'nats.url'), dir: data });
  });

  it('takes the nearest one when several directories up the tree have one', () => {
    cluster(root, 'nats://127.0.0.1:1000');
    const near = cluster(sub('a'), 'nats://127.0.0.1:3000');
    expect(findCluster({ cwd: sub('a', 'b'), checkout: root })).toEqual({ url: 'nats://127.0.0.1:3000', source: join(near, 'nats.url'), dir: near });
  });

  it('skips an empty nats.url', () => {
    const data = cluster(root, 'nats://127.0.0.1:1000');
    cluster(sub('a'), '');
    expect(findCluster({ cwd: sub('a') }).url).toBe('nats://127.0.0.1:1000');
    expect(findCluster({ cwd: sub('a') }).dir).toBe(data);
  });

  it("falls back to the checkout's .strata when nothing up the tree has one", () => {
    const checkout = sub('checkout');
    const data = cluster(checkout, 'nats://127.0.0.1:4000');
    expect(findCluster({ cwd: sub('elsewhere', 'deep'), checkout })).toEqual({ url: 'nats://127.0.0.1:4000', source: join(data, 'nats.url'), dir: data });
  });

  it('with nothing found, fails at once saying where it looked and what to do, and names no default URL', () => {
    const cwd = sub('x', 'y');
    const checkout = sub('checkout');
    let thrown: unknown;
    try {
      findCluster({ cwd, checkout });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ClusterNotFound);
    expect((thrown as Error).message).toBe(
      `no cluster found: no .strata/nats.url in ${cwd} or any parent, nor in the checkout ${checkout}, and NATS_URL is not set; start one with "npm run up" (in the checkout), or set NATS_URL to its NATS servers`,
    );
    expect((thrown as Error).message).not.toMatch(/4222/);
  });
});

describe('messages for a cluster that does not answer', () => {
  it('names the URL and NATS_URL when the URL came from the environment', () => {
    const err = unreachable({ url: 'nats://10.0.0.5:4222', source: 'NATS_URL' }, Object.assign(new Error('connection refused'), { cause: new Error('connect ECONNREFUSED 10.0.0.5:4222') }));
    expect(err.message).toBe('cannot reach the cluster at nats://10.0.0.5:4222 (from NATS_URL): connection refused: connect ECONNREFUSED 10.0.0.5:4222; check NATS_URL');
  });

  it('says that no strata up runs on the data directory when its pid file is gone or names a dead process', () => {
    const data = cluster(root, 'nats://127.0.0.1:14222');
    const where = { url: 'nats://127.0.0.1:14222', source: join(data, 'nats.url'), dir: data };
    expect(upState(data)).toBe('stopped');
    expect(unreachable(where, new Error('connection refused')).message).toBe(
      `cannot reach the cluster at nats://127.0.0.1:14222 (from ${join(data, 'nats.url')}): connection refused; no "strata up" is running on ${data}; start it with "npm run up" (or "strata --dir ${data} up")`,
    );
    // A pid no process has: the highest a Linux pid can be is 4194304.
    writeFileSync(join(data, 'up.pid'), '4194305\n');
    expect(upState(data)).toBe('stopped');
    writeFileSync(join(data, 'up.pid'), `${process.pid}\n`);
    expect(upState(data)).toBe('running');
    expect(unreachable(where, new Error('connection refused')).message).toMatch(/: connection refused; is the cluster running\?$/);
  });

  it('adds the URL to no-responders and timeouts from the config service, and leaves refusals alone', () => {
    const noResponders = new StrataError(ErrorCode.UNAVAILABLE, 'no service answers on strata.cfg.status', { hint: 'no-responders' });
    expect(String(withUrl(noResponders, 'nats://h:1'))).toBe(
      'UNAVAILABLE: connected to the cluster at nats://h:1, but no config replica answers (no service answers on strata.cfg.status): are its config replicas running? see the logs in its data directory',
    );
    const timeout = new StrataError(ErrorCode.TIMEOUT, 'no reply on strata.cfg.get within 10000 ms');
    expect(String(withUrl(timeout, 'nats://h:1'))).toBe('TIMEOUT: no reply on strata.cfg.get within 10000 ms (cluster at nats://h:1): the config service did not answer in time');
    const notFound = new StrataError(ErrorCode.NOT_FOUND, 'vdisk "x" does not exist');
    expect(withUrl(notFound, 'nats://h:1')).toBe(notFound);
    // A snapshot's cut that the owner's controller never answered (it was killed): not blamed on the config service.
    const cut = new StrataError(ErrorCode.TIMEOUT, 'node n1 did not finish the cut of vdisk 7 (no reply on strata.io.n1.snapshot within 60000 ms)', { hint: NAMED_TIMEOUT });
    expect(withUrl(cut, 'nats://h:1')).toBe(cut);
  });
});
