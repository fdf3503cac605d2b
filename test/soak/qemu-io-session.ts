// One long-lived NBD client, the way a VM holds its disk: an interactive qemu-io on
// one connection to a gateway, with QEMU's own reconnect (reconnect-delay), so a
// gateway that dies and comes back on its port costs the client a pause, not an
// error. Commands go one at a time (queue depth 1); each ends at the next prompt.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { track, untrack } from '../harness/util';

const PROMPT = 'qemu-io> ';

export interface SessionTarget {
  port: number;
  exportName: string;
  /** How long QEMU keeps a request waiting for a reconnect before failing it. */
  reconnectDelayS: number;
}

export class QemuIoSession {
  private readonly child: ChildProcessWithoutNullStreams;
  private buffer = '';
  private waiting: ((text: string) => void) | undefined;
  private exited = false;

  constructor(target: SessionTarget) {
    const opts = ['driver=nbd', 'server.type=inet', 'server.host=127.0.0.1', `server.port=${target.port}`, `export=${target.exportName}`, `reconnect-delay=${target.reconnectDelayS}`].join(',');
    // One pipe for both streams, so an error line comes before the prompt that follows it.
    this.child = spawn('sh', ['-c', `exec qemu-io --image-opts '${opts}' 2>&1`], { stdio: ['pipe', 'pipe', 'pipe'] });
    track(this.child);
    this.child.stdout.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString();
      this.deliver();
    });
    this.child.once('exit', () => {
      untrack(this.child);
      this.exited = true;
      this.waiting?.(`${this.buffer}\n(qemu-io exited)`);
      this.waiting = undefined;
    });
  }

  /** Waits for the first prompt: the connection is made (or qemu-io exited saying why). */
  ready(timeoutMs: number): Promise<string> {
    return this.next(timeoutMs);
  }

  /** Runs one command; resolves with what qemu-io printed for it. Fails after `timeoutMs`. */
  run(command: string, timeoutMs: number): Promise<string> {
    if (this.exited) return Promise.reject(new Error('qemu-io has exited'));
    const result = this.next(timeoutMs);
    this.child.stdin.write(`${command}\n`);
    return result;
  }

  get alive(): boolean {
    return !this.exited;
  }

  close(): void {
    if (this.exited) return;
    this.child.stdin.end('quit\n');
    setTimeout(() => this.child.kill('SIGKILL'), 5_000).unref();
  }

  private next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        this.child.kill('SIGKILL');
        reject(new Error(`qemu-io gave no prompt within ${timeoutMs} ms: ${this.buffer.slice(-300)}`));
      }, timeoutMs);
      this.waiting = (text) => {
        clearTimeout(timer);
        resolve(text);
      };
      this.deliver();
    });
  }

  private deliver(): void {
    const at = this.buffer.indexOf(PROMPT);
    if (at < 0 || this.waiting === undefined) return;
    const text = this.buffer.slice(0, at);
    this.buffer = this.buffer.slice(at + PROMPT.length);
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting(text);
  }
}
