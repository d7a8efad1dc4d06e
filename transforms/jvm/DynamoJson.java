package carve.transforms;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.io.SerializedString;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.StringWriter;
import java.util.HashSet;
import java.util.Set;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF1;

/**
 * A JSON document (text) -> its DynamoDB value, in one pass: (json, size, problem).
 *
 * <p>json is DynamoDB's typed wire JSON ({"M":{...}}, {"L":[...]}, {"S":...}, {"N":"..."},
 * {"BOOL":...}, {"NULL":true}); a number keeps the text it has in the document, never a
 * double. size is the value's size by DynamoDB's published rules (S: UTF-8 bytes; N: one byte
 * per two significant digits + 1; BOOL, NULL: 1; M, L: 3 + 1 per element + the elements, a
 * map element's name included). problem is NULL, or why the document cannot be stored, and then
 * json is NULL: text that is not JSON (strict: no comments, NaN, single quotes, control
 * characters or trailing content), a number DynamoDB does not hold (over 38 significant digits,
 * or outside 1E-130 .. 9.99E+125 in magnitude), a string with a lone surrogate (not Unicode),
 * nesting deeper than DynamoDB's 32 levels. A key given twice in one object keeps its last
 * value, as PostgreSQL's jsonb and Python's json.loads do (the document is then re-read once).
 *
 * <p>Compiled by jobs/runtimes/jvm.py and called through Spark SQL (transforms/jvm.py).
 */
public final class DynamoJson implements UDF1<String, Row> {
  private static final long serialVersionUID = 1L;

  static final int MAX_DEPTH = 32;

  private static final SerializedString M = new SerializedString("M");
  private static final SerializedString L = new SerializedString("L");
  private static final SerializedString S = new SerializedString("S");
  private static final SerializedString N = new SerializedString("N");

  private transient JsonFactory factory;
  private transient ObjectMapper mapper;

  /** An object holds a key twice: the document is converted again with the last values. */
  private static final class DuplicateKey extends Exception {
    private static final long serialVersionUID = 1L;

    DuplicateKey() {
      super(null, null, false, false);
    }
  }

  /** A document DynamoDB cannot hold, though it may be JSON. */
  private static final class Refused extends Exception {
    private static final long serialVersionUID = 1L;

    Refused(String reason) {
      super(reason, null, false, false);
    }
  }

  @Override
  public Row call(String text) {
    if (text == null) {
      return null;
    }
    if (factory == null) {
      factory = JsonFactory.builder().disable(StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION).build();
    }
    try {
      return convert(text);
    } catch (DuplicateKey d) {
      try {
        // Exact numbers: big decimals and integers keep every digit (1e5 may come back as 1E+5).
        if (mapper == null) {
          mapper = new ObjectMapper(factory).enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
              .enable(DeserializationFeature.USE_BIG_INTEGER_FOR_INTS);
        }
        return convert(mapper.writeValueAsString(mapper.readTree(text)));
      } catch (DuplicateKey | IOException e) {
        return refused("not valid JSON: " + e.getMessage());
      }
    }
  }

  private Row convert(String text) throws DuplicateKey {
    StringWriter out = new StringWriter(text.length() * 2 + 16);
    try (JsonParser parser = factory.createParser(text);
        JsonGenerator gen = factory.createGenerator(out)) {
      if (parser.nextToken() == null) {
        return refused("not valid JSON (no value)");
      }
      long size = value(parser, gen, 1);
      if (parser.nextToken() != null) {
        return refused("not valid JSON (content after the value at character "
            + (parser.currentTokenLocation().getCharOffset() + 1) + ")");
      }
      gen.flush();
      return RowFactory.create(out.toString(), size, null);
    } catch (Refused r) {
      return refused(r.getMessage());
    } catch (JsonParseException e) {
      String message = e.getOriginalMessage();
      int newline = message.indexOf('\n');
      if (newline >= 0) {
        message = message.substring(0, newline);
      }
      message = message.replaceAll("\\[Source: [^;\\]]*; (line: [0-9]+, column: [0-9]+)\\]", "$1");
      return refused("not valid JSON near character " + (e.getLocation() == null ? "?" : String.valueOf(e.getLocation().getCharOffset() + 1)) + ": " + message);
    } catch (IOException e) {
      return refused("not valid JSON: " + e.getMessage());
    }
  }

  private static Row refused(String reason) {
    return RowFactory.create(null, 0L, reason);
  }

  /** Writes the value at the parser's current token; returns its size. */
  private static long value(JsonParser p, JsonGenerator g, int depth) throws IOException, Refused, DuplicateKey {
    JsonToken token = p.currentToken();
    switch (token) {
      case START_OBJECT: {
        checkDepth(depth);
        g.writeStartObject();
        g.writeFieldName(M);
        g.writeStartObject();
        long size = 3;
        Set<String> seen = null;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
          String name = p.currentName();
          if (seen == null) {
            seen = new HashSet<>();
          }
          if (!seen.add(name)) {
            throw new DuplicateKey();
          }
          g.writeFieldName(name);
          p.nextToken();
          size += utf8Length(name) + 1 + value(p, g, depth + 1);
        }
        g.writeEndObject();
        g.writeEndObject();
        return size;
      }
      case START_ARRAY: {
        checkDepth(depth);
        g.writeStartObject();
        g.writeFieldName(L);
        g.writeStartArray();
        long size = 3;
        while (p.nextToken() != JsonToken.END_ARRAY) {
          size += 1 + value(p, g, depth + 1);
        }
        g.writeEndArray();
        g.writeEndObject();
        return size;
      }
      case VALUE_STRING: {
        String s = p.getText();
        g.writeStartObject();
        g.writeFieldName(S);
        g.writeString(s);
        g.writeEndObject();
        return utf8Length(s);
      }
      case VALUE_NUMBER_INT:
      case VALUE_NUMBER_FLOAT: {
        String n = p.getText();
        DynamoNumber.Parsed number = checked(n);
        g.writeStartObject();
        g.writeFieldName(N);
        g.writeString(n);
        g.writeEndObject();
        return number.size();
      }
      case VALUE_TRUE:
      case VALUE_FALSE:
        g.writeStartObject();
        g.writeBooleanField("BOOL", token == JsonToken.VALUE_TRUE);
        g.writeEndObject();
        return 1;
      case VALUE_NULL:
        g.writeStartObject();
        g.writeBooleanField("NULL", true);
        g.writeEndObject();
        return 1;
      default:
        throw new JsonParseException(p, "unexpected " + token);
    }
  }

  private static void checkDepth(int depth) throws Refused {
    if (depth > MAX_DEPTH) {
      throw new Refused("nested deeper than DynamoDB's " + MAX_DEPTH + " levels");
    }
  }

  /** A JSON number's parts; Refused when DynamoDB cannot hold it. */
  static DynamoNumber.Parsed checked(String n) throws Refused {
    DynamoNumber.Parsed parsed = DynamoNumber.Parsed.of(n); // a JSON number always parses
    if (parsed.digits > DynamoNumber.MAX_DIGITS) {
      throw new Refused("a JSON number has more than " + DynamoNumber.MAX_DIGITS + " significant digits");
    }
    if (!parsed.inRange()) {
      throw new Refused("a JSON number " + shorten(n) + " is " + DynamoNumber.RANGE);
    }
    return parsed;
  }

  /** UTF-8 bytes of a string; Refused for a lone surrogate, which UTF-8 cannot encode. */
  static long utf8Length(String s) throws Refused {
    long bytes = 0;
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c < 0x80) {
        bytes += 1;
      } else if (c < 0x800) {
        bytes += 2;
      } else if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
        bytes += 4;
        i++;
      } else if (Character.isSurrogate(c)) {
        throw new Refused(String.format("a JSON string holds a lone surrogate \\u%04x (not Unicode text)", (int) c));
      } else {
        bytes += 3;
      }
    }
    return bytes;
  }

  private static String shorten(String s) {
    return s.length() <= 60 ? s : s.substring(0, 60) + "...";
  }
}
