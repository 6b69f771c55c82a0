// A bar chart of usage per window as inline SVG: one bar per window, the y axis in the
// resource's unit with labelled ticks, the x axis by window start. No library.

import { svg } from '../dom.js';
import { count, day, instant } from '../format.js';

const WIDTH = 720;
const HEIGHT = 220;
const LEFT = 78;
const RIGHT = 12;
const TOP = 14;
const BOTTOM = 40;

/** A "nice" axis top at or above `max`: 1, 2 or 5 × a power of ten. */
function niceTop(max) {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * power).find((top) => top >= max);
}

/**
 * `points`: [{start, end, used}] oldest first; `unit`: what is counted. Returns the
 * <svg> with a title and a description for screen readers.
 */
export function usageChart(points, unit, title) {
  const top = niceTop(Math.max(...points.map((p) => p.used)));
  const plotW = WIDTH - LEFT - RIGHT;
  const plotH = HEIGHT - TOP - BOTTOM;
  const y = (v) => TOP + plotH - (v / top) * plotH;
  const slot = plotW / Math.max(points.length, 1);
  const barW = Math.max(2, Math.min(40, slot * 0.7));
  const children = [svg('title', {}, title),
    svg('desc', {}, `${points.length} windows; the highest ${count(Math.max(...points.map((p) => p.used)))} ${unit}.`)];
  for (let i = 0; i <= 4; i += 1) {
    const value = (top / 4) * i;
    children.push(
      svg('line', { x1: LEFT, x2: WIDTH - RIGHT, y1: y(value), y2: y(value), class: 'grid' }),
      svg('text', { x: LEFT - 6, y: y(value) + 4, class: 'tick', 'text-anchor': 'end' }, count(value)),
    );
  }
  children.push(svg('text', {
    x: 14, y: TOP + plotH / 2, class: 'axis-label', 'text-anchor': 'middle',
    transform: `rotate(-90 14 ${TOP + plotH / 2})`,
  }, `${unit} used`));
  points.forEach((p, i) => {
    const x = LEFT + slot * i + (slot - barW) / 2;
    children.push(svg('rect', {
      x, y: y(p.used), width: barW, height: Math.max(0, TOP + plotH - y(p.used)), class: 'bar-rect',
    }, svg('title', {}, `${instant(p.start)} – ${instant(p.end)}: ${count(p.used)} ${unit}`)));
  });
  const labelled = points.length <= 8 ? points.map((_, i) => i) : [0, Math.floor(points.length / 2), points.length - 1];
  for (const i of labelled) {
    children.push(svg('text', {
      x: LEFT + slot * i + slot / 2, y: HEIGHT - BOTTOM + 16, class: 'tick', 'text-anchor': 'middle',
    }, day(points[i].start)));
  }
  children.push(svg('text', { x: LEFT + plotW / 2, y: HEIGHT - 6, class: 'axis-label', 'text-anchor': 'middle' },
    'window start (UTC)'));
  return svg('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart', role: 'img', 'aria-label': title,
  }, children);
}
