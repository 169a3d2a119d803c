package graphkit.neo4j.guide;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Pattern;
import javax.ws.rs.GET;
import javax.ws.rs.PathParam;
import javax.ws.rs.core.Response;

/**
 * Serves graphkit's Browser guide and graph style sheet, read-only, from one flat directory.
 *
 * <p>Mounted by the launcher as the unmanaged extension {@code /graphkit} when it is started with
 * {@code --guides DIR}, so {@code :play http://127.0.0.1:PORT/graphkit/library.html} and
 * {@code :style http://127.0.0.1:PORT/graphkit/graphkit.grass} load from the server the Browser
 * itself came from. Only plain file names with a known extension are answered: no path ever
 * leaves the directory.
 */
@javax.ws.rs.Path("/")
public class GuideResource {

    /** Set once by the launcher before the server starts. */
    private static volatile Path root;

    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9_-]+\\.(html|grass|json)");
    private static final Map<String, String> TYPES = Map.of(
            "html", "text/html; charset=utf-8",
            "grass", "text/plain; charset=utf-8",
            "json", "application/json");

    /** The directory served; {@code null} serves nothing. */
    public static void serve(Path directory) {
        root = directory;
    }

    @GET
    @javax.ws.rs.Path("{name}")
    public Response get(@PathParam("name") String name) {
        Path directory = root;
        if (directory == null || !NAME.matcher(name).matches()) {
            return Response.status(Response.Status.NOT_FOUND).build();
        }
        Path file = directory.resolve(name);
        if (!Files.isRegularFile(file)) {
            return Response.status(Response.Status.NOT_FOUND).build();
        }
        try {
            byte[] body = Files.readAllBytes(file);
            String extension = name.substring(name.lastIndexOf('.') + 1);
            return Response.ok(body, TYPES.get(extension))
                    // The guide is rewritten when the library changes; never serve a stale one.
                    .header("Cache-Control", "no-store")
                    .build();
        } catch (IOException e) {
            return Response.serverError().build();
        }
    }
}
