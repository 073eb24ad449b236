import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * A self-signed X.509 v3 certificate (RFC 5280) built with node:crypto alone: MSAL and @azure/identity refuse a
 * non-https authority ("The authorityHost address must use the 'https' protocol"), so the emulator serves TLS and
 * the writer trusts this certificate through its `caFile`, with verification left on (reliability.md §4.4).
 */
export interface SelfSignedCertificate {
  certPem: string;
  keyPem: string;
  /** `keyPem` followed by `certPem`: the single-file form `ClientCertificateCredential` reads. */
  combinedPem: string;
}

export interface CertificateOptions {
  commonName?: string;
  /** DNS names and IP addresses for subjectAltName; default `localhost`, `127.0.0.1`, `::1`. */
  altNames?: string[];
  /** RSA is what Entra ID accepts for client-assertion certificates; EC keys are smaller for TLS. */
  keyType?: 'rsa' | 'ec';
  validDays?: number;
}

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const NULL = Buffer.from([0x05, 0x00]);

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [40 * (parts[0] ?? 0) + (parts[1] ?? 0)];
  for (const part of parts.slice(2)) {
    const chunk: number[] = [part & 0x7f];
    for (let v = part >>> 7; v > 0; v >>>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

function positiveInteger(bytes: Buffer): Buffer {
  return tlv(0x02, (bytes[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes);
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2))) : tlv(0x18, Buffer.from(iso));
}

function name(commonName: string): Buffer {
  return seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.concat(groups.map((g) => Buffer.from(g.padStart(4, '0'), 'hex')));
}

function subjectAltName(altNames: string[]): Buffer {
  // GeneralName CHOICE: [2] dNSName IA5String, [7] iPAddress OCTET STRING (implicit tags).
  const names = altNames.map((n) => (isIP(n) ? tlv(0x87, ipBytes(n)) : tlv(0x82, Buffer.from(n, 'ascii'))));
  return seq(oid('2.5.29.17'), tlv(0x04, seq(...names)));
}

function signatureAlgorithm(key: KeyObject): Buffer {
  // sha256WithRSAEncryption carries explicit NULL parameters; ecdsa-with-SHA256 has none (RFC 5758 §3.2).
  return key.asymmetricKeyType === 'rsa' ? seq(oid('1.2.840.113549.1.1.11'), NULL) : seq(oid('1.2.840.10045.4.3.2'));
}

export function generateSelfSignedCertificate(options: CertificateOptions = {}): SelfSignedCertificate {
  const keyType = options.keyType ?? 'ec';
  const { privateKey, publicKey } =
    keyType === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const commonName = options.commonName ?? 'symphony-archiver graph emulator';
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + (options.validDays ?? 30) * 86_400_000);
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const altNames = options.altNames ?? ['localhost', '127.0.0.1', '::1'];
  const algorithm = signatureAlgorithm(privateKey);
  const tbs = seq(
    tlv(0xa0, positiveInteger(Buffer.from([2]))),
    positiveInteger(serial),
    algorithm,
    name(commonName),
    seq(time(notBefore), time(notAfter)),
    name(commonName),
    publicKey.export({ type: 'spki', format: 'der' }),
    tlv(0xa3, seq(subjectAltName(altNames))),
  );
  const signature = sign('sha256', tbs, privateKey);
  const der = seq(tbs, algorithm, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const certPem = `-----BEGIN CERTIFICATE-----\n${der
    .toString('base64')
    .replace(/.{64}/g, '$&\n')
    .replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { certPem, keyPem, combinedPem: keyPem + certPem };
}
