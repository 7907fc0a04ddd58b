// Names and label values derived from an image, so a report can be found from its digest alone.
import { createHash } from 'node:crypto';

const NAME_SEGMENT_MAX = 40;
const NAME_DIGEST_HEX = 12;
const LABEL_DIGEST_HEX = 40;
const FALLBACK_SEGMENT = 'image';

/**
 * The report's metadata.name: `<repository's last path segment as a DNS-1123 label, <=40 chars>-<first
 * 12 hex of the digest>`, e.g. `nginx-1a2b3c4d5e6f`. Always a valid DNS-1123 label (<=53 chars), even
 * for odd input: a segment with nothing usable becomes `image`.
 */
export function reportName(repository: string, digest: string): string {
  return `${nameSegment(repository)}-${digestHex(digest).slice(0, NAME_DIGEST_HEX)}`;
}

/** The imagescan.dev/digest label value: the first 40 hex of the digest (label values are <=63 chars). */
export function digestLabelValue(digest: string): string {
  return digestHex(digest).slice(0, LABEL_DIGEST_HEX);
}

function nameSegment(repository: string): string {
  // A repository has no tag or digest, but be safe: cut them off rather than fold them into the name.
  const withoutDigest = repository.split('@', 1)[0] ?? '';
  const last = withoutDigest.slice(withoutDigest.lastIndexOf('/') + 1);
  const withoutTag = last.split(':', 1)[0] ?? '';
  const sanitized = withoutTag
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, NAME_SEGMENT_MAX)
    .replace(/^-+|-+$/g, '');
  return sanitized.length > 0 ? sanitized : FALLBACK_SEGMENT;
}

/**
 * The lowercase hex of a `sha256:<hex>` digest. Anything else (never produced by the image parsers,
 * but this must not yield an invalid name) is hashed, so distinct inputs still give distinct names.
 */
function digestHex(digest: string): string {
  const match = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (match?.[1] !== undefined) return match[1];
  return createHash('sha256').update(digest).digest('hex');
}
