/**
 * A TCP proxy in front of a single Redis server that can silence one connection: its bytes are dropped in
 * both directions while both sockets stay open, as when a network path dies without a reset (a failover
 * moving an address, a NAT entry dropped). Neither side notices until it times out. It can also hold
 * what clients send until released: a client's connection then stays unanswered (not ready) meanwhile.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

interface Relay {
  client: Socket;
  upstream: Socket;
  /** What the client sent first (the handshake: AUTH, CLIENT SETNAME …), as text. */
  hello: string;
  silenced: boolean;
  /** What the client sent while the proxy held it, in order. */
  pending: Buffer[];
  /** Set when the connection was made while new connections with this marker were to be silenced. */
  silenceIfHello?: string;
}

export class SilencingProxy {
  private readonly relays: Relay[] = [];
  private readonly server: Server;
  private holding = false;
  /** New connections whose handshake contains this are silenced at once. */
  private silencing?: string;
  port = 0;

  private constructor(upstreamHost: string, upstreamPort: number) {
    this.server = createServer((client) => this.relay(client, connect(upstreamPort, upstreamHost)));
  }

  /** Listens on a free port of 127.0.0.1. */
  static async start(upstreamHost: string, upstreamPort: number): Promise<SilencingProxy> {
    const proxy = new SilencingProxy(upstreamHost, upstreamPort);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', resolve);
    });
    const address = proxy.server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy has no port');
    proxy.port = address.port;
    return proxy;
  }

  private relay(client: Socket, upstream: Socket): void {
    const relay: Relay = {
      client,
      upstream,
      hello: '',
      silenced: false,
      pending: [],
      silenceIfHello: this.silencing,
    };
    this.relays.push(relay);
    client.on('data', (data: Buffer) => {
      if (relay.hello.length < 4096) relay.hello += data.toString('latin1');
      if (relay.silenceIfHello !== undefined && relay.hello.includes(relay.silenceIfHello))
        relay.silenced = true;
      if (relay.silenced) return;
      if (this.holding) relay.pending.push(data);
      else upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      if (!relay.silenced) client.write(data);
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  }

  /** From now on, keeps what clients send instead of passing it on. */
  hold(): void {
    this.holding = true;
  }

  /** Passes on what was held, and whatever comes next. */
  release(): void {
    this.holding = false;
    for (const relay of this.relays) {
      for (const data of relay.pending.splice(0)) if (!relay.silenced) relay.upstream.write(data);
    }
  }

  /** Silences connections made from now on whose handshake contains `marker` (undefined: none). */
  silenceNew(marker: string | undefined): void {
    this.silencing = marker;
  }

  /** Silences every open connection whose handshake contains `marker`; returns how many. */
  silence(marker: string): number {
    const matching = this.relays.filter(
      (r) => !r.silenced && !r.client.destroyed && r.hello.includes(marker),
    );
    for (const relay of matching) relay.silenced = true;
    return matching.length;
  }

  /** Closes every open connection (both sides see it closed) and keeps listening for new ones. */
  dropAll(): void {
    for (const relay of this.relays.splice(0)) {
      relay.client.destroy();
      relay.upstream.destroy();
    }
  }

  async close(): Promise<void> {
    for (const relay of this.relays) {
      relay.client.destroy();
      relay.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
