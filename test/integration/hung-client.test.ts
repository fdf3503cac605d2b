// A hung process (SIGSTOP) keeps its NATS subscriptions, queue-group members included,
// until the server finds its connection stale. Until then the server hands it its share
// of the group's requests, and each of those goes unanswered. Strata's servers ping a
// silent client every 2 s and drop it after 2 unanswered pings (libs/natsd), so a hung
// member stops taking requests within about 6 s: a metadata shard paused on a node
// that failed over, say, no longer eats the requests of the partitions it lost.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startProgram, startTopology, sleep, type ActorProcess, type NatsTopology } from '../harness';
import { envSecurityOptions } from '../harness/suite-security';

const SUBJECT = 'hung.test';
const QUEUE = 'members';

/** A queue-group member in its own process that answers with its name. */
function startMember(url: string, name: string): ActorProcess {
  const script = `
    const { connect } = require('@nats-io/transport-node');
    const { clientSecurityFromEnv, securityOptions } = require('@strata/natsd');
    (async () => {
      const nc = await connect({ servers: process.env.URL.split(','), ...securityOptions(clientSecurityFromEnv(process.env)) });
      nc.subscribe('${SUBJECT}', { queue: '${QUEUE}', callback: (_e, m) => m.respond(new TextEncoder().encode('${name}')) });
      await nc.flush();
      console.log('ready');
    })();`;
  return startProgram(process.execPath, ['-e', script], { name, env: { URL: url } });
}

/** Who answered each of `count` requests, or 'none' when a request had no answer within 1 s. */
async function ask(nc: NatsConnection, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    try {
      const reply = await nc.request(SUBJECT, new Uint8Array(0), { timeout: 1_000 });
      out.push(new TextDecoder().decode(reply.data));
    } catch {
      out.push('none');
    }
  }
  return out;
}

describe('a hung queue-group member', () => {
  let nats: NatsTopology;
  let client: NatsConnection;
  let live: ActorProcess;
  let hung: ActorProcess;

  beforeAll(async () => {
    nats = await startTopology('single');
    client = await connect({ servers: nats.url.split(','), ...envSecurityOptions() });
    live = startMember(nats.url, 'live');
    hung = startMember(nats.url, 'hung');
    await Promise.all([live.waitForOutput(/ready/, 10_000), hung.waitForOutput(/ready/, 10_000)]);
  }, 30_000);
  afterAll(async () => {
    hung?.signal('SIGCONT');
    await Promise.all([live?.stop(), hung?.stop()]);
    await client?.close();
    await nats?.stop();
  }, 30_000);

  it('stops receiving requests within seconds of its pause: every later request is answered by the live member', async () => {
    // The premise: both members take requests.
    const before = await ask(client, 40);
    expect(new Set(before)).toEqual(new Set(['live', 'hung']));

    hung.signal('SIGSTOP');
    // Two pings 2 s apart go unanswered; the server closes the connection at the third.
    await sleep(8_000);
    const after = await ask(client, 20);
    expect(after).toEqual(Array.from({ length: 20 }, () => 'live'));
  }, 60_000);
});
