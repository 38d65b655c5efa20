// Page URLs as they are recorded. The query and the fragment go by default: search terms,
// e-mail addresses, reset links and `#access_token=…` live there. `data-keep-query="utm_source,page"`
// keeps the named query parameters, and a hash route (`#/…`, `#!/…`) keeps its path.

export function cleanUrl(href: string, keep: string[]): string {
  try {
    const u = new URL(href);
    const q = new URLSearchParams();
    u.searchParams.forEach((v, k) => keep.includes(k) && q.append(k, v));
    u.search = '' + q;
    u.hash = /^#!?\//.test(u.hash) ? u.hash.split('?')[0] : '';
    return u.href;
  } catch {
    return '';
  }
}
