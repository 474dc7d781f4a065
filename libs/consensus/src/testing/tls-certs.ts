import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** PEM files of a test CA and a certificate it signed for 127.0.0.1 / localhost, plus an unrelated CA. */
export interface TestCertificates {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** A self-signed CA that signed nothing here: trusting it alone must fail verification. */
  otherCaFile: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function selfSignedCa(dir: string, name: string): void {
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

/**
 * Makes the certificates in `dir` with the `openssl` binary (Node's crypto cannot issue X.509
 * certificates): tests of TLS on the Raft transport and the HTTP API use them.
 */
export function makeTestCertificates(dir: string): TestCertificates {
  fs.mkdirSync(dir, { recursive: true });
  selfSignedCa(dir, 'test-ca');
  selfSignedCa(dir, 'other-ca');
  openssl(dir, [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'node.key',
    '-out',
    'node.csr',
    '-subj',
    '/CN=127.0.0.1',
  ]);
  fs.writeFileSync(
    path.join(dir, 'node.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' +
      'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    'node.csr',
    '-CA',
    'test-ca.pem',
    '-CAkey',
    'test-ca.key',
    '-CAcreateserial',
    '-out',
    'node.pem',
    '-days',
    '2',
    '-extfile',
    'node.ext',
  ]);
  const file = (f: string) => path.join(dir, f);
  return {
    dir,
    caFile: file('test-ca.pem'),
    certFile: file('node.pem'),
    keyFile: file('node.key'),
    otherCaFile: file('other-ca.pem'),
    ca: fs.readFileSync(file('test-ca.pem')),
    cert: fs.readFileSync(file('node.pem')),
    key: fs.readFileSync(file('node.key')),
  };
}
