/**
 * Redis URLs may carry a password (`redis://:secret@host`, `redis://user:secret@host`). Nothing bananas
 * prints or logs may contain it: every URL shown goes through {@link redactUrl}, every error message
 * through {@link redactSecrets}.
 */
import { decodeUrlPart, isMultiHostUrl, splitMultiHostUrl, splitUserinfo } from './redis-url.js';

export function redactUrl(url: string): string {
  if (isMultiHostUrl(url)) return redactMultiHostUrl(url);
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(UNPARSED_PASSWORD, '$1***@');
  }
}

/**
 * A cluster or sentinel URL (`redis+cluster://user:pw@h1:1,h2:2`, `…/master?sentinelPassword=pw`): the
 * password and the sentinel password become `***`. One that cannot be taken apart shows only its scheme.
 */
function redactMultiHostUrl(url: string): string {
  const parts = splitMultiHostUrl(url);
  if (!parts) return `${/^[^:]*:\/\//.exec(url)?.[0] ?? ''}***`;
  let userinfo = '';
  if (parts.userinfo !== undefined) {
    const { user, password } = splitUserinfo(parts.userinfo);
    userinfo = password === undefined ? `${user}@` : `${user}:***@`;
  }
  let query = parts.query ?? '';
  if (query !== '') {
    query = query.replace(/([?&](?:sentinelPassword)=)[^&]*/gi, '$1***');
  }
  return `${parts.scheme}${userinfo}${parts.hosts}${parts.path ?? ''}${query}`;
}

/** `//user:password@` in a URL that `new URL` refuses; the password may itself contain `@`. */
const UNPARSED_PASSWORD = /(\/\/[^:/@]*:)([^/]*)@/;

/** Extracts the password (if any) of a Redis URL, for {@link redactSecrets}. */
export function passwordOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  if (isMultiHostUrl(url)) return multiHostSecrets(url)[0];
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

/** Every secret a Redis URL carries (its password; for Sentinel also the sentinel password). */
export function secretsOf(url: string | undefined): string[] {
  if (!url) return [];
  if (isMultiHostUrl(url)) return multiHostSecrets(url).filter((s): s is string => s !== undefined);
  const password = passwordOf(url);
  return password === undefined ? [] : [password];
}

function multiHostSecrets(url: string): [password?: string, sentinelPassword?: string] {
  const parts = splitMultiHostUrl(url);
  if (!parts) {
    // Unparseable: everything after the scheme may be secret.
    const rest = url.replace(/^[^:]*:\/\//, '');
    return [rest === '' ? undefined : rest];
  }
  const raw = parts.userinfo === undefined ? '' : (splitUserinfo(parts.userinfo).password ?? '');
  const password = raw === '' ? undefined : decodeUrlPart(raw);
  const sentinel = new URLSearchParams(parts.query ?? '').get('sentinelPassword') ?? '';
  return [password, sentinel === '' ? undefined : sentinel];
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
