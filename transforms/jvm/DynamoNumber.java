package carve.transforms;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF1;

/**
 * A number's text -> its DynamoDB N value, in one pass over the characters: (plain, size, problem).
 *
 * <p>plain is the shortest exact form: no '+', no leading zeros, no trailing zeros in the
 * fraction, no lone point, '.5' as '0.5', the exponent upper-cased without '+' or leading zeros
 * ('1e+07' -> '1E7'), any zero as '0'. It is NULL when the text is not a decimal number (NaN,
 * Infinity, words). Spaces around the text are ignored, as Spark's trim does. size is the N
 * value's size by DynamoDB's published rules: one byte per two significant digits, plus one.
 * problem is NULL, or why DynamoDB cannot hold the number: not a number, over 38 significant
 * digits, or outside 1E-130 .. 9.99E+125 in magnitude; it quotes the text's first 60 characters.
 *
 * <p>DynamoJson checks the numbers inside JSON documents with the same {@link Parsed}.
 */
public final class DynamoNumber implements UDF1<String, Row> {
  private static final long serialVersionUID = 1L;

  static final int MAX_DIGITS = 38;
  static final int MIN_EXPONENT = -130;
  static final int MAX_EXPONENT = 125;
  static final String RANGE = "outside DynamoDB's range (1E-130 to 9.99E+125 in magnitude)";

  @Override
  public Row call(String text) {
    if (text == null) {
      return null;
    }
    Parsed n = Parsed.of(text);
    if (n == null) {
      return RowFactory.create(null, 0L, "value " + quoted(text) + " is not a number");
    }
    String plain = n.plain();
    if (n.digits > MAX_DIGITS) {
      return RowFactory.create(plain, 0L, "number " + quoted(text) + " has " + n.digits
          + " significant digits; DynamoDB holds at most " + MAX_DIGITS);
    }
    if (!n.inRange()) {
      return RowFactory.create(plain, 0L, "number " + quoted(text) + " is " + RANGE);
    }
    return RowFactory.create(plain, (long) n.size(), null);
  }

  /** The first 60 characters (code points) of the text, as the reason quotes it. */
  private static String quoted(String text) {
    int points = text.codePointCount(0, text.length());
    return points <= 60 ? text : text.substring(0, text.offsetByCodePoints(0, 60));
  }

  /** A decimal number's parts: [-+]digits[.digits][(e|E)[-+]digits], or .digits for the mantissa. */
  static final class Parsed {
    final String text;
    final boolean negative;
    final int intStart;
    final int intEnd; // the integer digits as written, leading zeros included
    final int fracStart;
    final int fracEnd; // the fraction digits as written, trailing zeros included
    final boolean hasExponent;
    final boolean exponentNegative;
    final String exponentDigits; // without sign or leading zeros; "0" for zero
    final int digits; // significant digits
    final long magnitude; // the power of ten of the first significant digit (0 for zero)

    private Parsed(String text, boolean negative, int intStart, int intEnd, int fracStart, int fracEnd,
        boolean hasExponent, boolean exponentNegative, String exponentDigits) {
      this.text = text;
      this.negative = negative;
      this.intStart = intStart;
      this.intEnd = intEnd;
      this.fracStart = fracStart;
      this.fracEnd = fracEnd;
      this.hasExponent = hasExponent;
      this.exponentNegative = exponentNegative;
      this.exponentDigits = exponentDigits;
      // The first and last non-zero digits, counted over the integer and fraction digits together.
      int count = (intEnd - intStart) + (fracEnd - fracStart);
      int first = -1;
      int last = -1;
      for (int k = 0; k < count; k++) {
        if (digitAt(k) != '0') {
          if (first < 0) {
            first = k;
          }
          last = k;
        }
      }
      this.digits = first < 0 ? 0 : last - first + 1;
      long exponent = 0;
      if (exponentDigits.length() <= 9) {
        exponent = Long.parseLong(exponentDigits) * (exponentNegative ? -1 : 1);
      } else {
        exponent = exponentNegative ? Long.MIN_VALUE / 2 : Long.MAX_VALUE / 2; // out of range either way
      }
      this.magnitude = first < 0 ? 0 : (intEnd - intStart) - first - 1 + exponent;
    }

    private char digitAt(int k) {
      int whole = intEnd - intStart;
      return k < whole ? text.charAt(intStart + k) : text.charAt(fracStart + k - whole);
    }

    /** The parts of a number's text, or null when it is not one. */
    static Parsed of(String text) {
      int start = 0;
      int end = text.length();
      while (start < end && text.charAt(start) == ' ') {
        start++;
      }
      while (end > start && text.charAt(end - 1) == ' ') {
        end--;
      }
      int i = start;
      boolean negative = false;
      if (i < end && (text.charAt(i) == '-' || text.charAt(i) == '+')) {
        negative = text.charAt(i) == '-';
        i++;
      }
      int intStart = i;
      i = skipDigits(text, i, end);
      int intEnd = i;
      int fracStart = i;
      int fracEnd = i;
      if (i < end && text.charAt(i) == '.') {
        fracStart = i + 1;
        i = skipDigits(text, fracStart, end);
        fracEnd = i;
      }
      if (intEnd == intStart && fracEnd == fracStart) {
        return null; // no digit in the mantissa
      }
      boolean hasExponent = false;
      boolean exponentNegative = false;
      String exponentDigits = "0";
      if (i < end && (text.charAt(i) == 'e' || text.charAt(i) == 'E')) {
        hasExponent = true;
        i++;
        if (i < end && (text.charAt(i) == '-' || text.charAt(i) == '+')) {
          exponentNegative = text.charAt(i) == '-';
          i++;
        }
        int digitsStart = i;
        i = skipDigits(text, i, end);
        if (i == digitsStart) {
          return null;
        }
        int first = digitsStart;
        while (first < i - 1 && text.charAt(first) == '0') {
          first++;
        }
        exponentDigits = text.substring(first, i);
      }
      if (i != end) {
        return null;
      }
      return new Parsed(text, negative, intStart, intEnd, fracStart, fracEnd, hasExponent, exponentNegative,
          exponentDigits);
    }

    private static int skipDigits(String text, int i, int end) {
      while (i < end && text.charAt(i) >= '0' && text.charAt(i) <= '9') {
        i++;
      }
      return i;
    }

    boolean inRange() {
      return digits == 0 || (magnitude >= MIN_EXPONENT && magnitude <= MAX_EXPONENT);
    }

    int size() {
      return (Math.max(digits, 1) + 1) / 2 + 1;
    }

    String plain() {
      if (digits == 0) {
        return "0";
      }
      StringBuilder out = new StringBuilder(text.length());
      if (negative) {
        out.append('-');
      }
      int whole = intStart;
      while (whole < intEnd - 1 && text.charAt(whole) == '0') {
        whole++;
      }
      if (whole == intEnd) {
        out.append('0'); // '.5'
      } else {
        out.append(text, whole, intEnd);
      }
      int fraction = fracEnd;
      while (fraction > fracStart && text.charAt(fraction - 1) == '0') {
        fraction--;
      }
      if (fraction > fracStart) {
        out.append('.').append(text, fracStart, fraction);
      }
      if (hasExponent) {
        out.append('E');
        if (exponentNegative && !exponentDigits.equals("0")) {
          out.append('-');
        }
        out.append(exponentDigits);
      }
      return out.toString();
    }
  }
}
