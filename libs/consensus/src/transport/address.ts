export interface HostPort {
  host: string;
  port: number;
}

/** Parses 'host:port' or '[v6]:port'; `what` names the setting in the error (e.g. 'RAFT_ADDR'). */
export function parseHostPort(value: string, what: string): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new Error(`${what} must be 'host:port' (e.g. 127.0.0.1:7101 or [::1]:7101), got '${value}'`);
  }
  return { host: m[1] ?? m[2], port };
}

export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
