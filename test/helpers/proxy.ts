/**
 * A TCP proxy in front of a single Redis server that can silence one connection: its bytes are dropped in
 * both directions while both sockets stay open, as when a network path dies without a reset (a failover
 * moving an address, a NAT entry dropped). Neither side notices until it times out.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

interface Relay {
  client: Socket;
  upstream: Socket;
  /** What the client sent first (the handshake: AUTH, CLIENT SETNAME …), as text. */
  hello: string;
  silenced: boolean;
}

export class SilencingProxy {
  private readonly relays: Relay[] = [];
  private readonly server: Server;
  port = 0;

  private constructor(upstreamHost: string, upstreamPort: number) {
    this.server = createServer((client) => this.relay(client, connect(upstreamPort, upstreamHost)));
  }

  /** Listens on `port` (default: a free one) of 127.0.0.1. */
  static async start(upstreamHost: string, upstreamPort: number, port = 0): Promise<SilencingProxy> {
    const proxy = new SilencingProxy(upstreamHost, upstreamPort);
    await new Promise<void>((resolve) => proxy.server.listen(port, '127.0.0.1', resolve));
    const address = proxy.server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy has no port');
    proxy.port = address.port;
    return proxy;
  }

  private relay(client: Socket, upstream: Socket): void {
    const relay: Relay = { client, upstream, hello: '', silenced: false };
    this.relays.push(relay);
    client.on('data', (data: Buffer) => {
      if (relay.hello.length < 4096) relay.hello += data.toString('latin1');
      if (!relay.silenced) upstream.write(data);
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

  /** Silences every open connection whose handshake contains `marker`; returns how many. */
  silence(marker: string): number {
    const matching = this.relays.filter(
      (r) => !r.silenced && !r.client.destroyed && r.hello.includes(marker),
    );
    for (const relay of matching) relay.silenced = true;
    return matching.length;
  }

  async close(): Promise<void> {
    for (const relay of this.relays) {
      relay.client.destroy();
      relay.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A loopback port nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
