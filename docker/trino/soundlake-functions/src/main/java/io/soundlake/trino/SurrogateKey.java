package io.soundlake.trino;

import io.airlift.slice.Slice;
import io.trino.spi.function.Description;
import io.trino.spi.function.ScalarFunction;
import io.trino.spi.function.SqlNullable;
import io.trino.spi.function.SqlType;
import io.trino.spi.type.StandardTypes;
import net.openhft.hashing.LongHashFunction;

import java.io.ByteArrayOutputStream;

/**
 * {@code surrogate_key(text, ...)}: a BIGINT key from natural key parts, as
 * soundlake computes it: XXH3-64 of the parts' UTF-8 bytes, each followed by
 * the unit separator 0x1F (a NULL part as 0x00 alone), read as a signed
 * integer. Trino's SPI has no variadic scalar functions: one to six parts.
 */
public final class SurrogateKey {
    private static final LongHashFunction XXH3 = LongHashFunction.xx3();

    private SurrogateKey() {}

    static long of(Slice... parts) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream(64);
        for (Slice part : parts) {
            if (part == null) {
                bytes.write(0x00);
            } else {
                bytes.writeBytes(part.getBytes());
                bytes.write(0x1f);
            }
        }
        return XXH3.hashBytes(bytes.toByteArray());
    }

    @Description("soundlake's key of natural key parts (XXH3-64)")
    @ScalarFunction("surrogate_key")
    @SqlType(StandardTypes.BIGINT)
    public static long key(@SqlNullable @SqlType(StandardTypes.VARCHAR) Slice a) {
        return of(a);
    }

    @ScalarFunction("surrogate_key")
    @SqlType(StandardTypes.BIGINT)
    public static long key(
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice a,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice b) {
        return of(a, b);
    }

    @ScalarFunction("surrogate_key")
    @SqlType(StandardTypes.BIGINT)
    public static long key(
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice a,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice b,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice c) {
        return of(a, b, c);
    }

    @ScalarFunction("surrogate_key")
    @SqlType(StandardTypes.BIGINT)
    public static long key(
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice a,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice b,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice c,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice d) {
        return of(a, b, c, d);
    }

    @ScalarFunction("surrogate_key")
    @SqlType(StandardTypes.BIGINT)
    public static long key(
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice a,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice b,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice c,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice d,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice e) {
        return of(a, b, c, d, e);
    }

    @ScalarFunction("surrogate_key")
    @SqlType(StandardTypes.BIGINT)
    public static long key(
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice a,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice b,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice c,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice d,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice e,
            @SqlNullable @SqlType(StandardTypes.VARCHAR) Slice f) {
        return of(a, b, c, d, e, f);
    }
}
