// Small string helpers that stay linear on any input.

// text without its leading and trailing "-". A loop, not /^-+|-+$/g: that regex tried "-+$" from
// every dash of an inner run of dashes to the run's end (quadratic in the run's length).
export function trimDashes(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && text[start] === "-") start++;
  while (end > start && text[end - 1] === "-") end--;
  return text.slice(start, end);
}
