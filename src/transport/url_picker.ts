// Which of a peer's URLs to use: the current one until it fails, then the next (etcd's urlPicker).

export class UrlPicker {
  private urls: string[];
  private picked = 0;

  constructor(urls: readonly string[]) {
    this.urls = normalize(urls);
  }

  update(urls: readonly string[]): void {
    this.urls = normalize(urls);
    this.picked = 0;
  }

  pick(): string {
    return this.urls[this.picked];
  }

  unreachable(url: string): void {
    if (this.urls[this.picked] === url) this.picked = (this.picked + 1) % this.urls.length;
  }

  all(): readonly string[] {
    return this.urls;
  }
}

function normalize(urls: readonly string[]): string[] {
  if (urls.length === 0) throw new Error('a peer needs at least one URL');
  return urls.map((u) => u.replace(/\/+$/, ''));
}
