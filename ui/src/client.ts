// The one API client of the page (it holds the session's CSRF token in memory) and the
// navigation callback type the pages share.
import { Api } from "./lib/api";
import type { Route } from "./lib/router";

export const api = new Api();

export type Navigate = (r: Route) => void;
