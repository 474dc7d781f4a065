import { createPrivateKey, KeyObject, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import { ConfigError } from './config-error';

/**
 * Certificate and key files named by settings (TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE,
 * EVENT_STORE_CA_FILE…), read and checked once at start-up: a missing, unreadable or malformed file, or a key
 * that does not belong to the certificate, is a ConfigError naming the setting and the file (exit code 2)
 * instead of a TLS failure on the first connection.
 */

export interface TlsFiles {
  /** PEM: the certificate (chain) this process presents. */
  cert: Buffer;
  /** PEM: its private key (unencrypted). */
  key: Buffer;
  /** PEM: the certificates trusted for peers, or null for the system's trust store. */
  ca: Buffer | null;
}

function readSetting(variable: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(variable, `cannot read ${file}: ${e.code ?? e.message}`);
  }
}

const pemCertificate = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The file's PEM certificates (at least one, each parsed). */
export function readCertificates(variable: string, file: string): { pem: Buffer; certs: X509Certificate[] } {
  const pem = readSetting(variable, file);
  const blocks = pem.toString('utf8').match(pemCertificate) ?? [];
  if (blocks.length === 0)
    throw new ConfigError(variable, `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  const certs = blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new ConfigError(
        variable,
        `${file}: certificate ${i + 1} does not parse: ${(err as Error).message}`,
      );
    }
  });
  return { pem, certs };
}

export function readPrivateKey(variable: string, file: string): { pem: Buffer; key: KeyObject } {
  const pem = readSetting(variable, file);
  try {
    return { pem, key: createPrivateKey(pem) };
  } catch (err) {
    throw new ConfigError(
      variable,
      `${file} is not an unencrypted PEM private key: ${(err as Error).message}`,
    );
  }
}

/**
 * A certificate + key pair (+ an optional CA file) from settings, or null when neither file is named.
 * `names` are the settings' names, used in the errors.
 */
export function readTlsFiles(
  names: { cert: string; key: string; ca: string },
  files: { cert?: string; key?: string; ca?: string },
): TlsFiles | null {
  if (!files.cert && !files.key) {
    if (files.ca)
      throw new ConfigError(
        names.ca,
        `set only with ${names.cert} and ${names.key} (TLS is off without them)`,
      );
    return null;
  }
  if (!files.cert) throw new ConfigError(names.cert, `required with ${names.key}`);
  if (!files.key) throw new ConfigError(names.key, `required with ${names.cert}`);
  const cert = readCertificates(names.cert, files.cert);
  const key = readPrivateKey(names.key, files.key);
  if (!cert.certs[0].checkPrivateKey(key.key))
    throw new ConfigError(
      names.key,
      `${files.key} is not the private key of the (first) certificate in ${files.cert} (${names.cert})`,
    );
  const ca = files.ca ? readCertificates(names.ca, files.ca).pem : null;
  return { cert: cert.pem, key: key.pem, ca };
}
