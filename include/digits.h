/* digits.h — the public API of libdigits (being replaced by a self-contained
 * dg_ header; today it is the internal umbrella). */
#ifndef DIGITS_H
#define DIGITS_H
#include "digits_internal.h"
#endif
