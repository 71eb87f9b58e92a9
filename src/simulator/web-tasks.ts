import { intBetween, pick } from './prng.ts';
import type { Rng } from './prng.ts';
import type { Rgb } from './png.ts';

/** A browsing task of the real dialect's trajectories: what the agent is asked, where it goes, what it answers. */
export interface WebTask {
  readonly task: string;
  readonly host: string;
  readonly title: string;
  readonly color: Rgb;
  readonly paths: readonly string[];
  readonly answer: string;
}

// Reserved example domains only (RFC 2606): a screenshot or a URL must never point at a real site.
export const WEB_TASKS: readonly WebTask[] = [
  {
    task: 'Find the three cheapest flights from Lisbon to Oslo next Friday',
    host: 'flights.example.net',
    title: 'Flights',
    color: [26, 115, 232],
    paths: ['/', '/search?from=LIS&to=OSL', '/results?from=LIS&to=OSL&sort=price', '/offer/LIS-OSL-1', '/offer/LIS-OSL-2'],
    answer: 'The three cheapest flights are TP 1254 at €89, SK 1802 at €104 and DY 1391 at €117, all direct.',
  },
  {
    task: 'What are the top 3 stories on the news front page?',
    host: 'news.example.org',
    title: 'Daily News',
    color: [255, 102, 0],
    paths: ['/', '/front', '/item?id=41872', '/item?id=41866', '/item?id=41859'],
    answer: '1. A new open-source database engine; 2. A study on remote work; 3. The launch of a weather satellite.',
  },
  {
    task: 'Compare the prices of the 27-inch monitors in the shop',
    host: 'shop.example.com',
    title: 'Shop',
    color: [0, 137, 123],
    paths: ['/', '/c/monitors', '/c/monitors?size=27', '/p/monitor-27-qhd', '/p/monitor-27-4k'],
    answer: 'Three 27-inch monitors: QHD 144 Hz at €229, 4K IPS at €349, 4K USB-C at €419.',
  },
  {
    task: 'Book a table for two on Saturday at 20:00',
    host: 'tables.example.com',
    title: 'Tables',
    color: [192, 57, 43],
    paths: ['/', '/search?party=2&day=sat', '/r/la-piazza', '/r/la-piazza/book', '/booking/confirm'],
    answer: 'Booked: La Piazza, Saturday 20:00, table for two (confirmation TBL-5821).',
  },
  {
    task: 'Collect the opening hours of the city libraries',
    host: 'city.example.org',
    title: 'City Services',
    color: [94, 53, 177],
    paths: ['/', '/libraries', '/libraries/central', '/libraries/north', '/libraries/harbour'],
    answer: 'Central 9:00–20:00, North 10:00–18:00, Harbour 10:00–17:00 (closed Sundays).',
  },
];

const THOUGHTS = [
  'The page has loaded and the search form is at the top. I will fill in the fields.',
  'A cookie banner covers the main button; I will dismiss it first.',
  'I can see a list of results. Sorting them should bring the relevant ones first.',
  'This looks like the right section. Scrolling down to read the remaining entries.',
  'The last click did not navigate anywhere. Trying the link text instead.',
  'I have what I need from this page; opening the next item.',
  'The details are below the fold, so I will scroll before reading them.',
  'Typing the query into the search box and submitting it.',
];

const PROGRESS = [
  'Found the listing page; going through the entries one by one.',
  'Still collecting the details; a few more pages to check.',
  'The site needs one more filter before the results are usable.',
];

/** A tool request of a policy step, and what its tool_result says. */
export interface ToolCall {
  readonly name: 'click' | 'type' | 'goto' | 'scroll';
  readonly args: Record<string, unknown>;
  readonly output: string;
}

/** Viewport of the simulated browser, in CSS pixels (clicks land inside it). */
const VIEWPORT = { width: 1280, height: 800 } as const;

/** One tool call for the next step; `goto` moves to `nextUrl`. */
export function pickToolCall(rng: Rng, task: WebTask, nextUrl: string): ToolCall {
  const roll = rng();
  if (roll < 0.35) {
    const x = intBetween(rng, 40, VIEWPORT.width - 40);
    const y = intBetween(rng, 120, VIEWPORT.height - 40);
    return { name: 'click', args: { x, y }, output: `Clicked at (${x}, ${y})` };
  }
  if (roll < 0.55) {
    const text = pick(rng, [task.task.split(' ').slice(-3).join(' '), 'Saturday', '27 inch monitor', 'Oslo']);
    return { name: 'type', args: { text, submit: rng() < 0.5 }, output: `Typed ${text.length} characters` };
  }
  if (roll < 0.8) return { name: 'goto', args: { url: nextUrl }, output: `Navigated to ${nextUrl}` };
  const amount = pick(rng, [300, 600, 900]);
  return { name: 'scroll', args: { direction: 'down', amount }, output: `Scrolled down ${amount} px` };
}

/** A thought for a policy step. */
export function pickThought(rng: Rng): string {
  return pick(rng, THOUGHTS);
}

/** A progress message for an occasional message_event. */
export function pickProgress(rng: Rng): string {
  return pick(rng, PROGRESS);
}
