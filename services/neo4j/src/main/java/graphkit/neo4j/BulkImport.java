package graphkit.neo4j;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.neo4j.cli.AdminTool;
import org.neo4j.cli.ExecutionContext;
import org.neo4j.io.fs.DefaultFileSystemAbstraction;

/**
 * Offline initial load: {@code neo4j-admin database import full} into the Neo4j home that
 * {@link Launcher} serves with the same {@code --data DIR}.
 *
 * <p>Usage: {@code BulkImport --data DIR [--database NAME] [--overwrite] [IMPORT OPTION...]}.
 * Every other argument goes verbatim to {@code database import full} (for example
 * {@code --nodes=Customer=customers.csv}, {@code --relationships=OWNS=owns.csv},
 * {@code --max-off-heap-memory=2g}, {@code --threads=2}); the database name (default
 * {@code neo4j}, the Launcher's default database) comes last. The store lands in
 * {@code DIR/data/databases/NAME} and its transaction logs in {@code DIR/data/transactions/NAME},
 * exactly where the Launcher's DBMS looks for them. A {@code DIR/conf/neo4j.conf}, if present, is
 * honoured like neo4j-admin would.
 *
 * <p>An existing non-empty database directory is refused (exit status 3) unless
 * {@code --overwrite} is given, which replaces it. The importer's report goes to stdout; errors go
 * to stderr, the last line always {@code bulk-import: ...}. Exit status 0 on success, 1 when the
 * import failed, 2 on a usage error.
 */
public final class BulkImport {

    private static final String DEFAULT_DATABASE = "neo4j";
    private static final int EXIT_FAILED = 1;
    private static final int EXIT_USAGE = 2;
    private static final int EXIT_NOT_EMPTY = 3;

    private BulkImport() {}

    /** Parsed command line: our own flags, and what goes to the importer. */
    private record Options(Path data, String database, boolean overwrite, List<String> rest) {}

    public static void main(String[] args) {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        PrintStream err = new PrintStream(System.err, true, StandardCharsets.UTF_8);
        int status;
        try {
            status = run(parse(args), out, err);
        } catch (UsageException e) {
            err.println("bulk-import: " + e.getMessage());
            status = EXIT_USAGE;
        } catch (Throwable t) {
            t.printStackTrace(err);
            err.println("bulk-import: failed: " + t);
            status = EXIT_FAILED;
        }
        System.exit(status);
    }

    private static int run(Options options, PrintStream out, PrintStream err) throws IOException {
        Path home = Files.createDirectories(options.data()).toAbsolutePath();
        Path store = home.resolve("data").resolve("databases").resolve(options.database());
        if (!options.overwrite() && isNonEmptyDirectory(store)) {
            err.println("bulk-import: database directory " + store + " is not empty; "
                    + "pass --overwrite to replace it");
            return EXIT_NOT_EMPTY;
        }
        List<String> command = new ArrayList<>(List.of("database", "import", "full"));
        command.addAll(options.rest());
        if (options.overwrite()) {
            command.add("--overwrite-destination=true");
        }
        command.add(options.database());

        int status;
        try (var fs = new DefaultFileSystemAbstraction()) {
            ExecutionContext context =
                    new ExecutionContext(home, home.resolve("conf"), out, err, fs);
            status = AdminTool.execute(context, command.toArray(String[]::new));
        }
        if (status != 0) {
            err.println("bulk-import: the import into " + store + " failed (status " + status
                    + "); see the messages above");
            return status == EXIT_USAGE ? EXIT_USAGE : EXIT_FAILED;
        }
        return 0;
    }

    private static boolean isNonEmptyDirectory(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            return Files.exists(dir);
        }
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.findAny().isPresent();
        }
    }

    private static Options parse(String[] args) throws UsageException {
        Path data = null;
        String database = DEFAULT_DATABASE;
        boolean overwrite = false;
        List<String> rest = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String flag = args[i];
            switch (flag) {
                case "-h", "--help" -> throw new UsageException("usage: BulkImport --data DIR "
                        + "[--database NAME] [--overwrite] [IMPORT OPTION...]");
                case "--overwrite" -> overwrite = true;
                case "--data", "--database" -> {
                    if (i + 1 >= args.length) {
                        throw new UsageException("missing value for " + flag);
                    }
                    String value = args[++i];
                    if (flag.equals("--data")) {
                        data = Path.of(value);
                    } else {
                        database = value;
                    }
                }
                default -> {
                    if (flag.startsWith("--overwrite-destination")) {
                        throw new UsageException("use --overwrite, not " + flag);
                    }
                    if (!flag.startsWith("-")) {
                        throw new UsageException("unexpected argument " + flag
                                + " (the database is named with --database)");
                    }
                    rest.add(flag);
                }
            }
        }
        if (data == null) {
            throw new UsageException("--data DIR is required");
        }
        return new Options(data, database, overwrite, rest);
    }

    /** A command-line error; its message is shown to the user as is. */
    private static final class UsageException extends Exception {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }
}
