// The key under which a tag's digest is known, in its own module so the webhook worker's bundle does
// not take in what known-images.ts imports (the report builder, and with it the API client).

/** `repository:tag` (tag latest when absent). */
export function tagKey(repository: string, tag: string | undefined): string {
  return `${repository}:${tag ?? 'latest'}`;
}
