/**
 * The README, BENCHMARKS.md, RELIABILITY.md and docs/ stay navigable: every relative link names
 * a file that exists, every `#anchor` names a heading of the page it points into (GitHub's rule
 * for heading ids), and the README stays a first screen for a newcomer, not the reference (under
 * 16 KB). The check is
 * proven against pages written here with broken links, so it cannot pass by finding nothing.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const README_LIMIT_BYTES = 16 * 1024;

/** The page's text outside fenced code blocks and inline code spans, lines kept in place. */
function prose(markdown: string): string[] {
  let fence = false;
  return markdown.split('\n').map((line) => {
    if (/^\s*```/.test(line)) {
      fence = !fence;
      return '';
    }
    return fence ? '' : line.replace(/`[^`]*`/g, '``');
  });
}

/** GitHub's id for a heading: its text without markup, lower-cased, punctuation dropped, spaces as hyphens; repeats get -1, -2… */
function headingIds(markdown: string): Set<string> {
  const ids = new Set<string>();
  const seen = new Map<string, number>();
  let fence = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) fence = !fence;
    const m = fence ? null : /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const text = m[1]!.replace(/\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/[`*_]{1,2}(?=\S)|(?<=\S)[`*_]{1,2}/g, '');
    const base = text.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    ids.add(n === 0 ? base : `${base}-${n}`);
  }
  return ids;
}

interface Problem {
  page: string;
  line: number;
  link: string;
  why: string;
}

/** Every relative link of the pages (repository-relative paths) that does not resolve. */
function brokenLinks(base: string, pages: readonly string[]): Problem[] {
  const problems: Problem[] = [];
  const idsOf = new Map<string, Set<string>>();
  const ids = (file: string) => {
    if (!idsOf.has(file)) idsOf.set(file, headingIds(readFileSync(join(base, file), 'utf8')));
    return idsOf.get(file)!;
  };
  for (const page of pages) {
    prose(readFileSync(join(base, page), 'utf8')).forEach((line, i) => {
      for (const m of line.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
        const link = m[1]!;
        if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // https:, mailto:: not ours to check
        const [path, anchor] = link.split('#', 2) as [string, string | undefined];
        const target = path === '' ? page : join(dirname(page), decodeURIComponent(path));
        const report = (why: string) => problems.push({ page, line: i + 1, link, why });
        if (relative(base, join(base, target)).startsWith('..')) report('points outside the repository');
        else if (!existsSync(join(base, target))) report(`${target} does not exist`);
        else if (anchor !== undefined) {
          if (!target.endsWith('.md') || statSync(join(base, target)).isDirectory()) report(`an anchor into ${target}, which is not a Markdown page`);
          else if (!ids(target).has(anchor)) report(`${target} has no heading with the id "${anchor}"`);
        }
      }
    });
  }
  return problems;
}

function docsPages(): string[] {
  const docs = join(root, 'docs');
  const pages = existsSync(docs) ? readdirSync(docs, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.md')).map((f) => join('docs', f)) : [];
  return ['README.md', 'BENCHMARKS.md', 'RELIABILITY.md', ...pages.sort()];
}

describe('README.md, BENCHMARKS.md, RELIABILITY.md and docs/', () => {
  it('every relative link and #anchor resolves', () => {
    const pages = docsPages();
    expect(pages.length).toBeGreaterThan(5);
    expect(brokenLinks(root, pages)).toEqual([]);
  });

  it(`README.md stays under ${README_LIMIT_BYTES / 1024} KB, and gives the install and test commands`, () => {
    const readme = readFileSync(join(root, 'README.md'));
    expect(readme.byteLength).toBeLessThan(README_LIMIT_BYTES);
    // CI (.ci/run) runs exactly the test command the README gives.
    expect(readme.toString('utf8')).toMatch(/^npm ci\b/m);
    expect(readme.toString('utf8')).toMatch(/^npm test\b/m);
  });

  it('heading ids follow GitHub: markup and punctuation dropped, repeats numbered', () => {
    const ids = headingIds(['# Xronox', '## PostgreSQL on AWS Lambda, behind RDS Proxy or PgBouncer', '### `npm start` (local)', '## Notes', '## Notes', '```', '# not a heading', '```'].join('\n'));
    expect([...ids]).toEqual(['xronox', 'postgresql-on-aws-lambda-behind-rds-proxy-or-pgbouncer', 'npm-start-local', 'notes', 'notes-1']);
  });

  it('the check finds a missing file, a missing anchor and an anchor of a missing heading on the same page', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'xronox-docs-links-'));
    try {
      mkdirSync(join(dir, 'docs'));
      writeFileSync(join(dir, 'README.md'), '# Top\n\n[ok](docs/a.md#part-one) [gone](docs/missing.md) [bad](docs/a.md#part-three) [self](#top) [selfbad](#nowhere)\n\n```\n[in code](nope.md)\n```\n');
      writeFileSync(join(dir, 'docs/a.md'), '# A\n\n## Part one\n\n[up](../README.md#top) [up-bad](../README.md#bottom) [web](https://example.com/x.md)\n');
      const found = brokenLinks(dir, ['README.md', 'docs/a.md']).map((p) => `${p.page}:${p.line} ${p.link}`);
      expect(found).toEqual(['README.md:3 docs/missing.md', 'README.md:3 docs/a.md#part-three', 'README.md:3 #nowhere', 'docs/a.md:5 ../README.md#bottom']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
