/**
 * An in-memory stand-in for the Secrets part of the Kubernetes API, enough to
 * unit-test the generator's logic (create, read, merge-patch with
 * resourceVersion preconditions, 404 and 409), and for reading a Node (the
 * address lookup of the host-network pods). The real API server is exercised
 * by the e2e suite.
 */
import * as http from 'http';
import { AddressInfo } from 'net';

export interface StoredSecret {
  metadata: { name: string; namespace: string; resourceVersion: string; labels?: Record<string, string> };
  data: Record<string, string>;
}

export class FakeKubeApi {
  readonly secrets = new Map<string, StoredSecret>();
  readonly requests: string[] = [];
  readonly nodes = new Map<string, object>();
  private version = 1;
  private server?: http.Server;

  /** Seeds a Secret with plain-text values. */
  put(namespace: string, name: string, values: Record<string, string>): void {
    const data = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    this.secrets.set(`${namespace}/${name}`, { metadata: { name, namespace, resourceVersion: String(this.version++) }, data });
  }

  /** Seeds a Node with its status addresses (e.g. { type: 'ExternalIP', address: '203.0.113.7' }). */
  putNode(name: string, addresses: { type: string; address: string }[]): void {
    this.nodes.set(name, { apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses } });
  }

  /** Plain-text values of a stored Secret. */
  values(namespace: string, name: string): Record<string, string> | undefined {
    const s = this.secrets.get(`${namespace}/${name}`);
    return s && Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => this.handle(req, body, res));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.server?.close(resolve));
  }

  private handle(req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
    this.requests.push(`${req.method} ${req.url}`);
    const send = (code: number, obj: object) => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    const status = (code: number, message: string) => send(code, { kind: 'Status', code, message });
    const node = /^\/api\/v1\/nodes\/([^/]+)$/.exec(req.url ?? '');
    if (node && req.method === 'GET') {
      const n = this.nodes.get(node[1]);
      return n ? send(200, n) : status(404, `nodes "${node[1]}" not found`);
    }
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(req.url ?? '');
    if (!m) return status(404, `no route ${req.url}`);
    const [, namespace, name] = m;
    const key = `${namespace}/${name}`;
    if (req.method === 'GET' && name) {
      const s = this.secrets.get(key);
      return s ? send(200, { apiVersion: 'v1', kind: 'Secret', ...s }) : status(404, `secrets "${name}" not found`);
    }
    if (req.method === 'POST' && !name) {
      const obj = JSON.parse(body);
      const k = `${namespace}/${obj.metadata.name}`;
      if (this.secrets.has(k)) return status(409, `secrets "${obj.metadata.name}" already exists`);
      const stored: StoredSecret = { metadata: { ...obj.metadata, namespace, resourceVersion: String(this.version++) }, data: obj.data ?? {} };
      this.secrets.set(k, stored);
      return send(201, stored);
    }
    if (req.method === 'PATCH' && name) {
      if (req.headers['content-type'] !== 'application/merge-patch+json') return status(415, 'unsupported patch type');
      const s = this.secrets.get(key);
      if (!s) return status(404, `secrets "${name}" not found`);
      const patch = JSON.parse(body);
      const rv = patch.metadata?.resourceVersion;
      if (rv !== undefined && rv !== s.metadata.resourceVersion) return status(409, 'the object has been modified');
      s.data = { ...s.data, ...(patch.data ?? {}) };
      s.metadata.resourceVersion = String(this.version++);
      return send(200, s);
    }
    return status(405, 'method not allowed');
  }
}
