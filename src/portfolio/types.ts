// Fallback model portfolios: desired state from portfolios/*.yaml.
import type { SourcePos } from "../config/position.js";

export const ERROR_CLASSES = [
  "rate_limit",
  "timeout",
  "server_error",
  "context_window",
  "content_policy",
  "auth",
] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

// Errors that may pass if the same model is asked again.
export const TRANSIENT: ReadonlySet<ErrorClass> = new Set(["rate_limit", "timeout", "server_error"]);

export interface ModelSpec {
  model: string;
  provider: string;
  contextWindow?: number;
  tools?: boolean;
  price?: { input: number; output: number }; // per million tokens, in the budget's currency
}

export interface Portfolio {
  name: string;
  appliesTo: { agents: string[]; taskClasses: string[] };
  models: ModelSpec[];
  retries: { attempts: number; backoffMs: number; maxRetryAfterMs: number };
  cooldown: { allowedFails: number; windowMs: number; durationMs: number };
  fallbackOn: ErrorClass[];
  contextWindowFallbacks?: string[];
  contentPolicyFallbacks?: string[];
  source: SourcePos;
}

export type Selector = "member" | "agents" | "taskClasses" | "default";

// The portfolio an agent member uses, and what chose it.
export interface Resolved {
  portfolio: Portfolio;
  selector: Selector;
}
