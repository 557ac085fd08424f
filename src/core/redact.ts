/**
 * Redis URLs may carry a password (`redis://:secret@host`, `redis://user:secret@host`). Nothing bananas
 * prints or logs may contain it: every URL shown goes through {@link redactUrl}, every error message
 * through {@link redactSecrets}.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
  }
}

/** Extracts the password (if any) of a Redis URL, for {@link redactSecrets}. */
export function passwordOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const password = decodeURIComponent(new URL(url).password);
    return password === '' ? undefined : password;
  } catch {
    return undefined;
  }
}

/** Replaces every occurrence of each secret (raw and URL-encoded) in `text` with `***`. */
export function redactSecrets(text: string, secrets: Array<string | undefined>): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) out = out.split(form).join('***');
  }
  return out;
}
