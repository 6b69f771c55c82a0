// How numbers, instants and durations read: grouped digits, UTC instants, short spans.

const grouped = new Intl.NumberFormat('en-US');

/** 12345 → "12,345"; big integers given as strings stay exact. */
export function count(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string' && /^\d+$/.test(value)) {
    return value.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  }
  return grouped.format(value);
}

/** An instant as "2026-12-08 14:03:05 UTC". */
export function instant(value) {
  if (!value) return '—';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return `${date.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** An instant's date as "2026-12-08". */
export function day(value) {
  return new Date(value).toISOString().slice(0, 10);
}

/** Seconds as "3 d 4 h", "12 min 5 s", "40 s". */
export function duration(seconds) {
  let s = Math.max(0, Math.round(seconds));
  const units = [['d', 86400], ['h', 3600], ['min', 60], ['s', 1]];
  const parts = [];
  for (const [unit, size] of units) {
    if (s >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(s / size)} ${unit}`);
      s %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

/** A fraction as a percentage: 0.8 → "80 %". */
export function percent(fraction) {
  return `${Math.round(fraction * 1000) / 10} %`;
}

/** A limit's span: "per month (calendar)", "rolling hour", "gauge". */
export function span(limit) {
  if (limit.period === 'none') return 'at once (gauge)';
  return limit.window === 'rolling' ? `per rolling ${limit.period}` : `per ${limit.period}`;
}

/** A `datetime-local` input's value, read as UTC, as RFC 3339; '' stays ''. */
export function fromLocalInput(value) {
  if (!value) return '';
  const withSeconds = value.length === 16 ? `${value}:00` : value;
  return `${withSeconds}Z`;
}

/** RFC 3339 as a `datetime-local` value in UTC. */
export function toLocalInput(value) {
  if (!value) return '';
  return new Date(value).toISOString().slice(0, 16);
}
