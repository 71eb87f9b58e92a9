/**
 * Prints docs/configuration.md's configuration table from src/config.ts OPTIONS, so the two
 * never drift (test/ops/docs.test.ts fails when they do).
 *   node scripts/config-table.ts
 */
import { OPTIONS } from '../src/config.ts';

// A literal `|` would end the cell early in a Markdown table.
const cell = (s: string) => s.replace(/\|/g, '\\|');

/** The Markdown table: variable, flag, default, meaning and accepted values. */
export function configTable(): string {
  const rows = ['| variable | flag | default | meaning |', '|---|---|---|---|'];
  for (const o of OPTIONS) {
    const fallback = o.default === undefined ? 'unset' : `\`${o.default}\``;
    const meaning = `${o.help}; ${o.accepts}${o.secret ? ' (secret: never logged)' : ''}`;
    rows.push(`| \`${o.env}\` | \`--${o.flag}\` | ${fallback} | ${cell(meaning)} |`);
  }
  return rows.join('\n');
}

if (import.meta.main) console.log(configTable());
