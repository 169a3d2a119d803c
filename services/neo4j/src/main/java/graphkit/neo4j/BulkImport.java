package graphkit.neo4j;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.neo4j.cli.AdminTool;
import org.neo4j.cli.ExecutionContext;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;
import org.neo4j.io.fs.DefaultFileSystemAbstraction;
import org.neo4j.logging.NullLogProvider;

/**
 * Offline initial load: {@code neo4j-admin database import full} into the Neo4j home that
 * {@link Launcher} serves with the same {@code --data DIR}.
 *
 * <p>Usage: {@code BulkImport --data DIR [--database NAME] [--overwrite] [--create-schema FILE
 * [--pagecache SIZE]] [IMPORT OPTION...]}. Every other argument (in {@code --option=value} form)
 * goes verbatim to {@code database import full} (for example
 * {@code --nodes=Customer=customers.csv}, {@code --relationships=OWNS=owns.csv},
 * {@code --max-off-heap-memory=2g}, {@code --threads=2}); the database name (default
 * {@code neo4j}, the Launcher's default database) comes last. The store lands in
 * {@code DIR/data/databases/NAME} and its transaction logs in {@code DIR/data/transactions/NAME},
 * exactly where the Launcher's DBMS looks for them. A {@code DIR/conf/neo4j.conf}, if present, is
 * honoured like neo4j-admin would.
 *
 * <p>{@code --create-schema FILE} then opens the new database embedded (no connector) and runs
 * the Cypher statements of FILE (one per line, each ending with {@code ;}; {@code //} comments
 * skipped), then waits for every index to come online: Neo4j community's record-format importer
 * cannot build indexes itself. It announces this step with a line {@code bulk-import: creating
 * schema} on stderr.
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
    // Building the unique indexes of a 20M-relationship store takes minutes, not hours.
    private static final long INDEX_WAIT_SECONDS = 6 * 3600;

    private BulkImport() {}

    /** Parsed command line: our own flags, and what goes to the importer. */
    private record Options(
            Path data,
            String database,
            boolean overwrite,
            Path schema,
            String pagecache,
            List<String> rest) {}

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
        if (options.schema() != null) {
            err.println("bulk-import: creating schema");
            createSchema(home, options, readStatements(options.schema()));
            err.println("bulk-import: schema online");
        }
        return 0;
    }

    /** Runs {@code statements} on the imported database, then waits for its indexes. */
    private static void createSchema(Path home, Options options, List<String> statements) {
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setUserLogProvider(NullLogProvider.getInstance())
                .setConfig(BoltConnector.enabled, false)
                .setConfig(HttpConnector.enabled, false)
                .setConfig(HttpsConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                .setConfig(GraphDatabaseSettings.initial_default_database, options.database())
                .setConfig(GraphDatabaseSettings.pagecache_memory,
                        ByteUnit.parse(options.pagecache()))
                .build();
        try {
            GraphDatabaseService db = dbms.database(options.database());
            for (String statement : statements) {
                db.executeTransactionally(statement);
            }
            db.executeTransactionally("CALL db.awaitIndexes($seconds)",
                    Map.of("seconds", INDEX_WAIT_SECONDS));
        } finally {
            dbms.shutdown();
        }
    }

    /** The statements of a Cypher script: lines up to each {@code ;}, comments dropped. */
    private static List<String> readStatements(Path file) throws IOException {
        List<String> statements = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            String trimmed = line.strip();
            if (trimmed.isEmpty() || trimmed.startsWith("//")) {
                continue;
            }
            current.append(current.length() == 0 ? "" : " ").append(trimmed);
            if (trimmed.endsWith(";")) {
                current.setLength(current.length() - 1);
                statements.add(current.toString());
                current.setLength(0);
            }
        }
        if (current.length() > 0) {
            statements.add(current.toString());
        }
        return statements;
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
        Path schema = null;
        String pagecache = "512m";
        List<String> rest = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            String flag = args[i];
            switch (flag) {
                case "-h", "--help" -> throw new UsageException("usage: BulkImport --data DIR "
                        + "[--database NAME] [--overwrite] [--create-schema FILE "
                        + "[--pagecache SIZE]] [IMPORT OPTION...]");
                case "--overwrite" -> overwrite = true;
                case "--data", "--database", "--create-schema", "--pagecache" -> {
                    if (i + 1 >= args.length) {
                        throw new UsageException("missing value for " + flag);
                    }
                    String value = args[++i];
                    switch (flag) {
                        case "--data" -> data = Path.of(value);
                        case "--database" -> database = value;
                        case "--create-schema" -> schema = Path.of(value);
                        default -> pagecache = value;
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
        try {
            ByteUnit.parse(pagecache);
        } catch (RuntimeException e) {
            throw new UsageException("invalid --pagecache size " + pagecache);
        }
        return new Options(data, database, overwrite, schema, pagecache, rest);
    }

    /** A command-line error; its message is shown to the user as is. */
    private static final class UsageException extends Exception {
        private static final long serialVersionUID = 1L;

        UsageException(String message) {
            super(message);
        }
    }
}
