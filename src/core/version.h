/* version.h — the digits version, defined once: `digits --version`, the
 * model files' digits.version metadata, and DIGITS_VERSION in digits.h. */
#ifndef DG_VERSION_H
#define DG_VERSION_H

#define DG_VERSION "0.12.0"

#endif
