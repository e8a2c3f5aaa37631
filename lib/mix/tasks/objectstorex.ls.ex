defmodule Mix.Tasks.Objectstorex.Ls do
  @shortdoc "Lists the objects under a store URL"

  @moduledoc """
  Lists the objects under a prefix of a store.

      mix objectstorex.ls [OPTIONS] URL

  `URL` is any location `mix objectstorex.cp` accepts (`s3://bucket/prefix/`, `gs://...`,
  `az://...`, `abfs://...`, `file:///dir/`, `memory://...`, `http(s)://...`, or a local path).

  Without `--recursive`, one level is listed: the objects directly under the prefix, by name,
  and the "directories" below it as `PRE name/`. A URL that names one object lists that object.
  With `--recursive`, every object under the prefix is listed by its full key, as the listing
  streams (memory does not grow with the number of objects; the order is the store's).

  ## Options

    * `-r`, `--recursive` - every key under the prefix, at any depth
    * `-l`, `--long` - also the size in bytes and the last-modified time (UTC):

          1048576  2025-06-01T12:00:00Z  data/file.bin
                                    PRE  data/2025/

  The exit status is non-zero when the listing fails, or when a prefix other than the store's
  root holds nothing. Credentials come from the environment, as for `mix objectstorex.cp`.
  """

  use Mix.Task

  alias ObjectStoreX.CLI

  @task "objectstorex.ls"
  @switches [recursive: :boolean, long: :boolean]

  @impl Mix.Task
  def run(args) do
    # Runnable again in the same session: `mix do objectstorex.cp a b, objectstorex.cp b c`.
    Mix.Task.reenable(@task)
    {opts, argv} = CLI.parse!(@task, args, @switches, r: :recursive, l: :long)

    loc = CLI.one_location!(@task, argv)

    store = CLI.open!(@task, loc)

    long? = Keyword.get(opts, :long, false)

    count =
      if opts[:recursive],
        do: recursive(store, loc, long?),
        else: one_level(store, loc, long?)

    if count == 0 and CLI.Location.prefix(loc) != nil,
      do: CLI.error!(@task, "nothing under #{CLI.Location.display(loc)}")
  end

  defp one_level(store, loc, long?) do
    prefix = CLI.Location.prefix(loc)
    strip = if prefix, do: prefix <> "/", else: ""

    case ObjectStoreX.list_with_delimiter(store, prefix: prefix) do
      {:ok, %{objects: [], common_prefixes: []}} when prefix != nil ->
        single(store, loc, prefix, long?)

      {:ok, result} ->
        for dir <- result.common_prefixes do
          IO.puts(directory_line(String.replace_prefix(dir, strip, "") <> "/", long?))
        end

        for meta <- result.objects do
          IO.puts(object_line(meta, String.replace_prefix(meta.location, strip, ""), long?))
        end

        length(result.common_prefixes) + length(result.objects)

      {:error, error} ->
        CLI.error!(@task, "#{CLI.Location.display(loc)}: #{error.message}")
    end
  end

  # `ls s3://bucket/dir/file.bin` shows that object, as a listing of its "directory" would.
  defp single(store, loc, key, long?) do
    case ObjectStoreX.head(store, key) do
      {:ok, meta} ->
        IO.puts(object_line(meta, Path.basename(key), long?))
        1

      {:error, %{reason: :not_found}} ->
        0

      {:error, error} ->
        CLI.error!(@task, "#{CLI.Location.display(loc)}: #{error.message}")
    end
  end

  defp recursive(store, loc, long?) do
    ObjectStoreX.Stream.list_stream(store, prefix: CLI.Location.prefix(loc))
    |> Enum.reduce(0, fn meta, count ->
      IO.puts(object_line(meta, meta.location, long?))
      count + 1
    end)
  rescue
    e in ObjectStoreX.Error -> CLI.error!(@task, "#{CLI.Location.display(loc)}: #{e.message}")
  end

  defp object_line(_meta, name, false), do: name

  defp object_line(meta, name, true) do
    modified = meta.last_modified |> DateTime.truncate(:second) |> DateTime.to_iso8601()
    "#{String.pad_leading(Integer.to_string(meta.size), 12)}  #{modified}  #{name}"
  end

  defp directory_line(name, false), do: "PRE " <> name
  defp directory_line(name, true), do: String.pad_leading("PRE", 34) <> "  " <> name
end
