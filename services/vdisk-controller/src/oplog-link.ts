// The connection oplog appends go over. A write is acknowledged only once the OPLOG
// stream has stored it, and an R3 stream stores a message when its leader has it and a
// follower has confirmed it. A publish sent through any other server first travels to
// the leader and its ack travels back: on one machine that costs about 150 µs of a
// 550 µs append (measured: 406 µs p50 through the leader's server, 552–562 µs through
// the others). So the controller keeps a second connection to the server that leads
// the stream, found by asking each server of the cluster its name, and moves it when
// JetStream announces a new leader (and, as a backstop, when a periodic look finds one).
//
// It is only a shortcut: any server accepts the publish, so while the link is being
// found or moved, or when no server answers to the leader's name, appends go over the
// actor's own connection. Correctness never depends on which one is used.
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { envSecurityOptions } from '@strata/bus';
import type { Logger } from '@strata/log';

/** JetStream announces a stream's new leader here (nats-server's JSAdvisoryStreamLeaderElectedPre). */
const leaderElectedSubject = (stream: string): string => `$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.${stream}`;

export interface OplogLinkOptions {
  /** The actor's own connection: used for the lookups, and for appends until a link exists. */
  nc: NatsConnection;
  stream: string;
  log: Logger;
  /** How often to check the leader even without an announcement. */
  recheckMs: number;
  /** How long a replaced connection stays open for publishes still in flight on it. */
  retireAfterMs: number;
}

export class OplogLink {
  private link: { nc: NatsConnection; js: JetStreamClient; server: string } | undefined;
  private readonly fallback: JetStreamClient;
  private advisories: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly retiring = new Map<NodeJS.Timeout, NatsConnection>();
  private finding: Promise<void> | undefined;
  private stopped = false;

  private constructor(private readonly options: OplogLinkOptions) {
    this.fallback = jetstream(options.nc);
  }

  /** Starts looking for the leader; appends can start at once (over the fallback). */
  static start(options: OplogLinkOptions): OplogLink {
    const link = new OplogLink(options);
    link.advisories = options.nc.subscribe(leaderElectedSubject(options.stream), { callback: () => link.retarget('leader elected') });
    link.timer = setInterval(() => link.retarget('periodic check'), options.recheckMs);
    link.timer.unref();
    link.retarget('start');
    return link;
  }

  /** The client to publish an append with now. */
  get js(): JetStreamClient {
    return this.link?.js ?? this.fallback;
  }

  /** The name of the server appends go to directly, if a link is up (for tests and logs). */
  get server(): string | undefined {
    return this.link?.server;
  }

  /** Resolves once the current lookup (if any) is over. */
  async settled(): Promise<void> {
    await this.finding;
  }

  private retarget(why: string): void {
    if (this.stopped || this.finding !== undefined) return;
    this.finding = this.find(why)
      .catch((err: unknown) => this.options.log.warn({ err, why }, 'oplog link: could not reach the stream leader; appends go over the actor connection'))
      .finally(() => (this.finding = undefined));
  }

  private async find(why: string): Promise<void> {
    const { nc, stream, log } = this.options;
    const info = await (await jetstreamManager(nc)).streams.info(stream);
    const leader = info.cluster?.leader;
    // One server, or no leader right now: nothing to gain.
    if (leader === undefined || info.config.num_replicas <= 1) return this.replace(undefined);
    if (this.link?.server === leader && !this.link.nc.isClosed()) return;
    if (nc.info?.server_name === leader) return this.replace(undefined);
    for (const url of this.candidates()) {
      if (this.stopped) return;
      // noAsyncTraces: appends go over this connection (see connectBus in @strata/bus).
      const candidate = await connect({ servers: [url], name: `${nc.info?.server_name ?? 'oplog'}-oplog-link`, maxReconnectAttempts: 0, timeout: 2000, noAsyncTraces: true, ...envSecurityOptions() }).catch(() => undefined);
      if (candidate === undefined) continue;
      if (candidate.info?.server_name === leader) {
        log.info({ leader, url, why }, 'oplog link: appends go straight to the stream leader');
        return this.replace({ nc: candidate, js: jetstream(candidate), server: leader });
      }
      await candidate.close();
    }
    log.info({ leader, why }, 'oplog link: no server answered to the leader name; appends go over the actor connection');
    this.replace(undefined);
  }

  /** Every server the actor's connection knows of, its own excluded. */
  private candidates(): string[] {
    const own = `${this.options.nc.info?.host}:${this.options.nc.info?.port}`;
    return [...new Set(this.options.nc.info?.connect_urls ?? [])].filter((u) => u !== own);
  }

  private replace(next: OplogLink['link']): void {
    const old = this.link;
    if (this.stopped && next !== undefined) {
      void next.nc.close();
      return;
    }
    this.link = next;
    if (old === undefined || old === next) return;
    // Publishes in flight on the old connection still get their acks (or time out and
    // are retried with the same msg id): close it only after they are done.
    const t = setTimeout(() => {
      this.retiring.delete(t);
      void old.nc.close();
    }, this.options.retireAfterMs);
    this.retiring.set(t, old.nc);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.advisories?.unsubscribe();
    await this.finding;
    const open = [...this.retiring.values()];
    for (const t of this.retiring.keys()) clearTimeout(t);
    this.retiring.clear();
    if (this.link !== undefined) open.push(this.link.nc);
    this.link = undefined;
    await Promise.all(open.map((c) => c.close()));
  }
}
