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
    return url.replace(UNPARSED_PASSWORD, '$1***@');
  }
}

/** `//user:password@` in a URL that `new URL` refuses; the password may itself contain `@`. */
const UNPARSED_PASSWORD = /(\/\/[^:/@]*:)([^/]*)@/;

/** Extracts the password (if any) of a Redis URL, for {@link redactSecrets}. */
export function passwordOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  let password: string;
  try {
    password = new URL(url).password;
  } catch {
    password = UNPARSED_PASSWORD.exec(url)?.[2] ?? '';
  }
  if (password === '') return undefined;
  try {
    return decodeURIComponent(password);
  } catch {
    // Not valid percent-encoding (`50%off`): the raw text is what would appear in messages.
    return password;
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
