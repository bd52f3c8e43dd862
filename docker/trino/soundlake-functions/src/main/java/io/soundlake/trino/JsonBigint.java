package io.soundlake.trino;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.airlift.slice.Slice;
import io.trino.spi.function.Description;
import io.trino.spi.function.ScalarFunction;
import io.trino.spi.function.SqlNullable;
import io.trino.spi.function.SqlType;
import io.trino.spi.type.StandardTypes;

import java.io.IOException;

/**
 * {@code json_bigint(json, 'a.b')}: the integer at a dotted path of a JSON
 * text, as soundlake computes it: NULL where the text is not JSON, lacks the
 * path, or holds something other than an integer of 64 bits there (a
 * fraction or an exponent included). Of a key given twice, the last counts.
 */
public final class JsonBigint {
    private static final JsonMapper JSON = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    private JsonBigint() {}

    static Long at(String json, String path) {
        JsonNode node;
        try {
            node = JSON.readTree(json);
        } catch (IOException e) {
            return null;
        }
        if (node == null) {
            return null;
        }
        for (String key : path.split("\\.", -1)) {
            if (!node.isObject()) {
                return null;
            }
            node = node.get(key);
            if (node == null) {
                return null;
            }
        }
        return node.isIntegralNumber() && node.canConvertToLong() ? node.longValue() : null;
    }

    @Description("the integer at a dotted path of a JSON text, as soundlake reads it")
    @ScalarFunction("json_bigint")
    @SqlNullable
    @SqlType(StandardTypes.BIGINT)
    public static Long jsonBigint(
            @SqlType(StandardTypes.VARCHAR) Slice json,
            @SqlType(StandardTypes.VARCHAR) Slice path) {
        return at(json.toStringUtf8(), path.toStringUtf8());
    }
}
