// How many cells apply works on at once by default (--parallelism). Its own module so the flag's
// help can show it without loading apply.
export const DEFAULT_PARALLELISM = 8;
